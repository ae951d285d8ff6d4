#!/usr/bin/python3
"""PyTorch CPU training-speed baseline for the incubator ViT engine.

Trains a timm-style ViT (class token, pre-norm, LayerNorm eps 1e-6, exact GELU; same model as
scripts/reference/make_fixtures.py) on random data: fp32 forward + backward + AdamW
(lr 1e-3, wd 0.05 on >=2-D weights, label-smoothed CE 0.1), and prints one JSON object per
line on stdout:
    {model, torch_steps_per_s, torch_step_ms_median, torch_peak_rss_mb, threads, torch_version, ...}

Run (from the repository root; Debian torch 1.13 CPU, OpenMP OpenBLAS):
    apt-get update && apt-get install -y python3-torch libopenblas0-openmp     # once
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
        /usr/bin/python3 bench/torch/vit_train_bench.py --model tiny [--threads 2]
    ... --model deit-t
    ... --matmul [--size 2048]          # one fp32 matmul, prints GFLOP/s

Timing: --warmup steps untimed, then --repeats runs of --steps steps each; steps/s per repeat =
steps / wall time; the reported value is the median over repeats (torch_step_ms_median =
1000 / that); steps_per_s_best is the fastest repeat and loadavg_1m_end the 1-minute load average
at the end (if it exceeds --threads, other processes shared the CPU and the numbers are low). Peak RSS = resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux) / 1024, i.e.
the whole-process peak (includes the torch runtime itself, ~ a few hundred MB). Run one model per
process so the peak RSS is that model's.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "reference"))
from make_fixtures import VisionTransformer, decay_groups  # noqa: E402  (same model as the fixtures)

CONFIGS = {
    "tiny": dict(img=16, patch=4, chans=3, classes=10, dim=64, depth=4, heads=4, mlp_ratio=4.0, batch=64),
    "deit-t": dict(img=32, patch=4, chans=3, classes=10, dim=192, depth=12, heads=3, mlp_ratio=4.0, batch=32),
}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_model(name, warmup, steps, repeats, config=None):
    cfg = dict(config if config is not None else CONFIGS[name])
    batch = cfg.pop("batch")
    torch.manual_seed(0)
    model = VisionTransformer(**cfg)
    model.train()
    decay, no_decay = decay_groups(model)
    opt = torch.optim.AdamW(
        [{"params": [p for _, p in decay], "weight_decay": 0.05},
         {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    )
    # a small pool of random batches, cycled (data generation is not timed)
    pool = [(torch.randn(batch, cfg["chans"], cfg["img"], cfg["img"]),
             torch.randint(0, cfg["classes"], (batch,))) for _ in range(4)]

    def step(i):
        x, y = pool[i % len(pool)]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss

    for i in range(warmup):
        step(i)
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        float(loss)  # sync (CPU: no-op, kept for clarity)
        rates.append(steps / (time.perf_counter() - t0))
    med = statistics.median(rates)
    return {
        "model": name,
        "torch_steps_per_s": round(med, 3),
        "torch_step_ms_median": round(1000.0 / med, 3),
        "torch_peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "batch": batch,
        "params": sum(p.numel() for p in model.parameters()),
        "tokens": (cfg["img"] // cfg["patch"]) ** 2 + 1,
        "warmup": warmup,
        "steps": steps,
        "repeats": repeats,
        "steps_per_s_all": [round(v, 3) for v in rates],
        "steps_per_s_best": round(max(rates), 3),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),  # >~ threads means other work shared the CPU
    }


def bench_matmul(n, repeats):
    torch.manual_seed(0)
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = a @ b  # warmup
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c = a @ b
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {
        "model": f"matmul{n}",
        "gflop_per_s": round(2.0 * n ** 3 / t / 1e9, 2),
        "matmul_ms_median": round(t * 1000.0, 3),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "gflop_per_s_best": round(2.0 * n ** 3 / min(times) / 1e9, 2),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "checksum": float(c[0, 0]),
    }


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU ViT training baseline")
    ap.add_argument("--model", default="all", help="a name in CONFIGS, 'all', or any name with --config")
    ap.add_argument("--config", help="JSON model config (img, patch, chans, classes, dim, depth, heads, "
                    "mlp_ratio, batch), as `incubator bench engine` passes it; overrides CONFIGS")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--matmul", action="store_true", help="time one fp32 NxN matmul instead, print GFLOP/s")
    ap.add_argument("--size", type=int, default=2048, help="matmul size N (with --matmul)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.matmul:
        print(json.dumps(bench_matmul(args.size, max(args.repeats, 5))), flush=True)
        return
    if args.config:
        print(json.dumps(bench_model(args.model, args.warmup, args.steps, args.repeats, json.loads(args.config))),
              flush=True)
        return
    if args.model != "all" and args.model not in CONFIGS:
        ap.error(f"--model {args.model}: not in {sorted(CONFIGS)}; pass --config for other models")
    models = sorted(CONFIGS, reverse=True) if args.model == "all" else [args.model]
    for m in models:
        print(json.dumps(bench_model(m, args.warmup, args.steps, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
