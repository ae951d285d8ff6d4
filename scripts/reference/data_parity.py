"""Data-pipeline reference: torchvision's RandomCrop(padding=...) and Normalize on a fixed image,
and the per-format normalisation constants. Imported by make_fixtures.py.

torchvision semantics (0.14, Debian's python3-torchvision):
    RandomCrop(size, padding=p)  pads every side by p with fill 0 (padding_mode "constant"; the
                                 DeiT-III "simple random crop" passes padding_mode="reflect"), then
                                 crops at (i, j) = get_params(padded, size), i, j uniform in
                                 [0, 2p] — drawn anew for every image the transform is called on.
    Normalize(mean, std)         (x / 255 - mean) / std per channel, after the crop: a padded
                                 pixel is 0 before normalisation, -mean/std after.
Every (i, j) of the crop is written, so the engine's crop can be checked offset by offset.

Mixup / CutMix: timm's Mixup (mode "batch", correct_lam=True, the official code's settings) for
given draws (method, lambda, box centre cy, cx), so the engine's mixing is checked without sharing
a random stream:
    partner of image i = image B-1-i (x.flip(0))
    mixup : x = lam * x + (1 - lam) * x.flip(0)
    cutmix: rand_bbox: cut = int(size * sqrt(1 - lam)) per side, box [c - cut//2, c + cut//2)
            clipped to the image; pasted from x.flip(0); lam = 1 - box area / image area
    target: lam * smooth_onehot(y) + (1 - lam) * smooth_onehot(y.flip(0)), off = eps/K, on = 1 - eps + off
"""
import gzip
import json
import math
import os
import struct

import torch

PADDING = 2

# Per-format constants (0..1 scale), with where they come from.
NORMALIZATION = {
    "cifar10": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616],
                "source": "CIFAR-10 training set per-channel mean and std"},
    "cifar100": {"mean": [0.5071, 0.4865, 0.4409], "std": [0.2673, 0.2564, 0.2762],
                 "source": "CIFAR-100 training set per-channel mean and std"},
    "image-folder": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                     "source": "timm IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD (DeiT, Deep Incubation)"},
}
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

MIX_CASES = [
    {"method": "mixup", "lambda": 0.7},
    {"method": "cutmix", "lambda": 0.6, "cy": 1, "cx": 6},  # clipped at the top and on the right
    {"method": "cutmix", "lambda": 0.3, "cy": 3, "cx": 3},
]
MIX_SMOOTHING = 0.1
MIX_CLASSES = 10


def timm_mix(x, target, case):
    """timm Mixup._mix_batch (+ mixup_target) for one batch with the given draws."""
    x = x.clone()
    lam = case["lambda"]
    if case["method"] == "cutmix":
        h, w = x.shape[-2:]
        ratio = math.sqrt(1 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        clip = lambda v, hi: min(max(v, 0), hi)  # noqa: E731  (np.clip on a scalar)
        yl, yh = clip(case["cy"] - cut_h // 2, h), clip(case["cy"] + cut_h // 2, h)
        xl, xh = clip(case["cx"] - cut_w // 2, w), clip(case["cx"] + cut_w // 2, w)
        x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        lam = 1.0 - (yh - yl) * (xh - xl) / float(h * w)
    else:
        x_flipped = x.flip(0).mul_(1.0 - lam)
        x.mul_(lam).add_(x_flipped)
    off = MIX_SMOOTHING / MIX_CLASSES
    on = 1.0 - MIX_SMOOTHING + off

    def one_hot(t):
        return torch.full((t.shape[0], MIX_CLASSES), off).scatter_(1, t.view(-1, 1), on)

    return x, one_hot(target) * lam + one_hot(target.flip(0)) * (1.0 - lam), lam


def fashion_mnist_stats():
    """Mean and std (0..1) of the Fashion-MNIST training images, when Debian's files are here."""
    if not os.path.exists(FASHION_MNIST):
        return None
    with gzip.open(FASHION_MNIST, "rb") as f:
        data = f.read()
    _, n, h, w = struct.unpack(">IIII", data[:16])
    x = torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).double() / 255
    return {"mean": [round(float(x.mean()), 4)], "std": [round(float(x.std(unbiased=False)), 4)],
            "images": n, "source": FASHION_MNIST}


def make_data_parity(out, write_safetensors):
    import torchvision
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    gen = torch.Generator().manual_seed(5005)
    c, h, w = 3, 5, 6
    image = torch.randint(1, 256, (c, h, w), generator=gen).float()  # no zero pixel of its own
    # RandomCrop draws i, j uniformly in [0, 2p]: every offset occurs.
    torch.manual_seed(5006)
    rc = T.RandomCrop((h, w), padding=PADDING)
    seen = {rc.get_params(TF.pad(image, [PADDING]), (h, w))[:2] for _ in range(2000)}
    offsets = [(i, j) for i in range(2 * PADDING + 1) for j in range(2 * PADDING + 1)]
    assert seen == set(offsets), sorted(seen)

    tensors = {"image": image}
    norm = NORMALIZATION["cifar10"]
    for mode in ("constant", "reflect"):
        padded = TF.pad(image, [PADDING], fill=0, padding_mode=mode)
        crops = torch.stack([TF.crop(padded, i, j, h, w) for i, j in offsets])
        tensors[f"crops.{mode}"] = crops
        tensors[f"crops.{mode}.normalized"] = TF.normalize(crops / 255, norm["mean"], norm["std"])
    mix_images = torch.randn(4, 3, 7, 8, generator=gen)
    mix_labels = torch.tensor([3, 1, 4, 1])
    tensors["mix.images"] = mix_images
    tensors["mix.labels"] = mix_labels
    mix_lambdas = []
    for k, case in enumerate(MIX_CASES):
        mixed, targets, lam = timm_mix(mix_images, mix_labels, case)
        tensors[f"mix.{k}.images"] = mixed
        tensors[f"mix.{k}.targets"] = targets
        mix_lambdas.append(lam)
    write_safetensors(os.path.join(out, "data_parity.safetensors"), tensors)
    meta = {
        "description": "torchvision RandomCrop(padding) and Normalize on a fixed 3x5x6 image "
        "(scripts/reference/data_parity.py)",
        "torchvision_version": torchvision.__version__,
        "padding": PADDING,
        "offsets": offsets,
        "offsets_note": "crops.<mode>[k] = crop of the padded image at row i, column j = offsets[k]; "
        "source row of output row 0 = i - padding",
        "normalized_with": "cifar10",
        "normalization": NORMALIZATION,
        "fashion_mnist": fashion_mnist_stats(),
        "mix": {"cases": MIX_CASES, "lambda_after": mix_lambdas, "label_smoothing": MIX_SMOOTHING,
                "classes": MIX_CLASSES, "note": "mix.<k>.images / .targets = timm Mixup of mix.images / "
                "mix.labels with MIX_CASES[k] (lambda before CutMix's area correction; lambda_after after it)"},
    }
    with open(os.path.join(out, "data_parity.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta
