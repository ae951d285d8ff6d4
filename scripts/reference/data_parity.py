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
"""
import gzip
import json
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
    }
    with open(os.path.join(out, "data_parity.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta
