#!/usr/bin/env python3
"""PyTorch beside the engine on the same device: the same ViT from the same start on the same
batches (written by gpu-check --write-inputs), then its speed. Prints one JSON line.

    python3 torch_check.py --inputs inputs.safetensors --device cuda [--timed 20] [--out torch.json]

The model and the AdamW decay groups are scripts/reference/make_fixtures.py's (the ones the
engine's reference tests match): class token, pre-norm, LayerNorm eps 1e-6, exact GELU;
label-smoothed cross-entropy 0.1; AdamW wd 0.05 on >=2-D weights except cls_token/pos_embed.
TF32 is off, so a CUDA matmul is plain fp32 like the engine's CPU run.
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
# make_fixtures.py sits beside this file in the GPU pack, in scripts/reference/ in the repository.
for candidate in (HERE, os.path.join(HERE, "..", "..", "scripts", "reference")):
    if os.path.exists(os.path.join(candidate, "make_fixtures.py")):
        sys.path.insert(0, candidate)
        break
from make_fixtures import VisionTransformer, decay_groups  # noqa: E402


def read_safetensors(path):
    """name -> tensor, plus the metadata dict (no numpy needed)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        raw = bytearray(data[base + b : base + e])
        out[name] = torch.frombuffer(raw, dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out, header.get("__metadata__", {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--timed", type=int, default=20)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)

    tensors, meta = read_safetensors(a.inputs)
    cfg = json.loads(meta["config"])
    batch, steps, lr = int(meta["batch"]), int(meta["steps"]), float(meta["lr"])
    model = VisionTransformer(
        img=cfg["imageSize"], patch=cfg["patchSize"], chans=cfg["channels"], classes=cfg["numClasses"],
        dim=cfg["width"], depth=cfg["depth"], heads=cfg["heads"], mlp_ratio=cfg["mlpRatio"],
    )
    state = {name[len("init."):]: t for name, t in tensors.items() if name.startswith("init.")}
    missing = sorted(set(dict(model.named_parameters())) - set(state))
    if missing:
        raise SystemExit(f"inputs lack parameters {missing[:5]}")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(state[name].reshape(p.shape))
    model.to(dev).train()
    decay, no_decay = decay_groups(model)
    opt = torch.optim.AdamW(
        [{"params": [p for _, p in decay], "weight_decay": 0.05},
         {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999), eps=1e-8,
    )
    images = tensors["images"].to(dev)
    labels = tensors["labels"].to(dev)

    def step(k):
        x = images[k * batch : (k + 1) * batch]
        y = labels[k * batch : (k + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    losses = [float(step(k)) for k in range(steps)]
    rates = []
    if a.timed > 0:
        step(0)
        sync()
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(a.timed):
                step(0)
            sync()
            rates.append(a.timed / (time.perf_counter() - t0))
    result = {
        "provider": f"torch-{dev.type}",
        "model": meta.get("model"),
        "batch": batch,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "lr": lr,
        "losses": losses,
        "single_step_steps_per_s": statistics.median(rates) if rates else None,
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None,
    }
    line = json.dumps(result)
    if a.out:
        with open(a.out, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
