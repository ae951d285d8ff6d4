#!/usr/bin/env python3
"""Compare loss trajectories with the engine's CPU run, and tabulate the speeds.

    python3 compare.py RESULT_DIR        # reads RESULT_DIR/*.json (gpu-check and torch_check lines)

Prints a Markdown table for bench/RESULTS.md and writes RESULT_DIR/summary.json. Exit code 1
when a trajectory leaves the tolerance: fp32 everywhere, but a GPU sums in another order (and
ONNX Runtime's CUDA provider may use TF32 matmuls), so GPU runs get 1e-2 relative per step; the
two CPU runs (engine and PyTorch, same start and batches) get 1e-4, as in the engine's tests.
"""
import json
import os
import sys

CPU_TOL = 1e-4
GPU_TOL = 1e-2


def rel_diffs(a, b):
    return [abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b)]


def main():
    out_dir = sys.argv[1]
    runs = []
    for name in sorted(os.listdir(out_dir)):
        if not name.endswith(".json") or name == "summary.json":
            continue
        with open(os.path.join(out_dir, name)) as f:
            text = f.read().strip()
        if text:
            runs.append(json.loads(text.splitlines()[-1]))
    by_model = {}
    for r in runs:
        by_model.setdefault(r["model"], []).append(r)
    failed = False
    rows = []
    for model, rs in sorted(by_model.items()):
        ref = next((r for r in rs if r["provider"] == "cpu"), None)
        for r in rs:
            row = {
                "model": model,
                "provider": r["provider"],
                "steps": len(r["losses"]),
                "first_loss": r["losses"][0] if r["losses"] else None,
                "last_loss": r["losses"][-1] if r["losses"] else None,
                "single": r.get("single_step_steps_per_s"),
                "loop": r.get("loop_steps_per_s"),
                "loop_steps": r.get("loop_steps"),
                "gpu": r.get("gpu"),
                "max_rel_diff": None,
                "ok": None,
            }
            if ref is not None and r is not ref:
                n = min(len(r["losses"]), len(ref["losses"]))
                d = max(rel_diffs(r["losses"][:n], ref["losses"][:n])) if n else float("inf")
                tol = CPU_TOL if r["provider"] in ("torch-cpu",) else GPU_TOL
                row["max_rel_diff"] = d
                row["tolerance"] = tol
                row["ok"] = n == len(ref["losses"]) and d <= tol
                failed |= not row["ok"]
            rows.append(row)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(rows, f, indent=1)
    def fmt(v, style="f"):
        if v is None:
            return "-"
        return f"{v:.2e}" if style == "e" else f"{v:.2f}"

    print("| model | run | steps/s (one step per run) | steps/s (Loop) | loss 1st → last | max rel. diff vs engine CPU | within tolerance |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        loop = "-" if r["loop"] is None else f"{r['loop']:.2f} (×{r['loop_steps']})"
        losses = "-" if r["first_loss"] is None else f"{r['first_loss']:.4f} → {r['last_loss']:.4f}"
        ok = "reference" if r["ok"] is None and r["provider"] == "cpu" else ("yes" if r["ok"] else ("-" if r["ok"] is None else "**no**"))
        print(f"| {r['model']} | {r['provider']} | {fmt(r['single'])} | {loop} | {losses} | {fmt(r['max_rel_diff'], 'e')} | {ok} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
