"""How the fused AdaMeZO update's time grows with the horizon K and with the parameter count.

Two sweeps with the auto-selected kernel, each point the median of interleaved rounds, each
with a least-squares line: time against K (1 … 40) on a fixed tensor, and time against the
number of elements at K = 10 (and, for comparison, the MeZO restore+update). If
``results/step_time_smollm2.json`` exists, the K slope is also stated for SmolLM2-135M's
parameter count as a fraction of one measured forward pass.

    python benchmarks/cost_growth.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import RESULTS, machine, median, write

from adamezo.kernels import FusedUpdate, resolve_kernel
from adamezo.noise import step_seed, stream_base

HORIZONS = [1, 2, 4, 8, 12, 16, 20, 24, 32, 40]
SIZES = [1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 25]


def update_for(streams: int, second_moment: bool = True) -> FusedUpdate:
    return FusedUpdate(
        restore=1e-3,
        m_coefs=tuple(0.3 * 0.7**k for k in range(streams)),
        v_coefs=tuple(0.1 * 0.9**k for k in range(streams)) if second_moment else None,
        gain=1.0,
        eps=1e-8,
        lr=1e-7,
        weight_decay=0.0,
    )


def timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def fit(x: list[float], y: list[float]) -> dict[str, float]:
    slope, intercept = np.polyfit(x, y, 1)
    predicted = np.polyval([slope, intercept], x)
    residual = float(np.sum((np.asarray(y) - predicted) ** 2))
    total = float(np.sum((np.asarray(y) - np.mean(y)) ** 2))
    return {"slope": float(slope), "intercept": float(intercept), "r2": 1 - residual / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=1 << 23, help="tensor size of the K sweep")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    info = machine()
    bases = [stream_base(step_seed(5, s), 0) for s in range(max(HORIZONS))]

    theta = torch.randn(args.numel)
    kernel = resolve_kernel("auto", theta, 1 << 20)
    by_k: dict[int, list[float]] = {k: [] for k in HORIZONS}
    for round_index in range(args.rounds + 1):
        for k in HORIZONS:
            seconds = timed(lambda k=k: kernel.fused_update(theta, bases[:k], update_for(k)), 1)
            if round_index:
                by_k[k].append(seconds)
        print(f"K sweep round {round_index} done", flush=True)
    k_medians = {k: median(v) for k, v in by_k.items()}
    k_fit = fit(HORIZONS, [k_medians[k] for k in HORIZONS])
    ns_per_element_per_k = 1e9 * k_fit["slope"] / args.numel

    tensors = {n: torch.randn(n) for n in SIZES}
    by_size: dict[str, dict[int, list[float]]] = {"AdaMeZO K=10": {}, "MeZO restore+update": {}}
    for round_index in range(args.rounds + 1):
        for n, tensor in tensors.items():
            repeats = max(1, (1 << 24) // n)
            cases = {
                "AdaMeZO K=10": lambda t=tensor: kernel.fused_update(t, bases[:10], update_for(10)),
                "MeZO restore+update": lambda t=tensor: kernel.fused_update(
                    t, bases[:1], update_for(1, second_moment=False)
                ),
            }
            for name, fn in cases.items():
                seconds = timed(fn, repeats)
                if round_index:
                    by_size[name].setdefault(n, []).append(seconds)
        print(f"size sweep round {round_index} done", flush=True)
    size_medians = {name: {n: median(v) for n, v in d.items()} for name, d in by_size.items()}
    size_fits = {name: fit(SIZES, [d[n] for n in SIZES]) for name, d in size_medians.items()}

    result = {
        "machine": info,
        "kernel": kernel.name,
        "k_sweep": {
            "numel": args.numel,
            "median_seconds": k_medians,
            "fit": k_fit,
            "ns_per_element_per_k": ns_per_element_per_k,
        },
        "size_sweep": {"median_seconds": size_medians, "fits": size_fits},
    }
    lines = [
        f"## Cost growth of the fused update (kernel `{kernel.name}`, float32)",
        "",
        f"Time against K on {args.numel:,} elements (median of {args.rounds} interleaved rounds):",
        "",
        "| K | " + " | ".join(str(k) for k in HORIZONS) + " |",
        "|---|" + "---|" * len(HORIZONS),
        "| s | " + " | ".join(f"{k_medians[k]:.4f}" for k in HORIZONS) + " |",
        "",
        f"Fit: time = {k_fit['intercept']:.4f} s + {k_fit['slope']:.4f} s·K (R² = "
        f"{k_fit['r2']:.4f}), i.e. {ns_per_element_per_k:.3f} ns per element per unit of K.",
        "",
        "Time against the number of elements:",
        "",
        "| elements | " + " | ".join(f"{n:,}" for n in SIZES) + " | slope ns/element | R² |",
        "|---|" + "---|" * (len(SIZES) + 2),
    ]
    for name, medians in size_medians.items():
        f = size_fits[name]
        lines.append(
            f"| {name} s | "
            + " | ".join(f"{medians[n]:.5f}" for n in SIZES)
            + f" | {1e9 * f['slope']:.3f} | {f['r2']:.4f} |"
        )
    step_file = RESULTS / "step_time_smollm2.json"
    if step_file.exists():
        step = json.loads(step_file.read_text())
        forward = step["median_seconds"]["our MeZO"]["forward"] / 2
        per_k = ns_per_element_per_k * 1e-9 * step["parameters"]
        result["per_k_vs_forward"] = {
            "parameters": step["parameters"],
            "seconds_per_k": per_k,
            "forward_seconds": forward,
            "fraction": per_k / forward,
        }
        lines += [
            "",
            f"SmolLM2-135M ({step['parameters']:,} parameters): +1 of K costs {per_k:.4f} s of "
            f"update time; one forward pass (batch 16, seq 64, median from step_time_smollm2) "
            f"took {forward:.3f} s, so +1 of K = {per_k / forward:.2%} of a forward pass.",
        ]
    write("cost_growth", result, lines)


if __name__ == "__main__":
    main()
