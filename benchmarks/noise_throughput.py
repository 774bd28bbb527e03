"""Noise and update throughput (G elements/s) on one tensor, every variant interleaved per round.

Variants: a plain copy (the memory-bandwidth ceiling of a pass that reads and writes θ once);
the reference-style MeZO pass of the original code (``torch.manual_seed`` + ``torch.normal`` +
``add_``); ``torch.randn`` + ``add_``; the plain-torch reference kernel's perturb; and the
compiled kernel's perturb, fused MeZO restore+update, and fused AdaMeZO update at K = 1, 5, 10,
20 (with second moments).

    python benchmarks/noise_throughput.py            # 2^25 float32 elements, 5 rounds
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import machine, median, write

from adamezo.kernels import FusedUpdate, TorchKernel, resolve_kernel
from adamezo.noise import step_seed, stream_base

HORIZONS = [1, 5, 10, 20]


def adamezo_update(streams: int) -> FusedUpdate:
    return FusedUpdate(
        restore=1e-3,
        m_coefs=tuple(0.3 * 0.7**k for k in range(streams)),
        v_coefs=tuple(0.1 * 0.9**k for k in range(streams)),
        gain=1.0,
        eps=1e-8,
        lr=1e-7,
        weight_decay=0.0,
    )


MEZO_UPDATE = FusedUpdate(
    restore=1e-3, m_coefs=(0.5,), v_coefs=None, gain=1.0, eps=0.0, lr=1e-7, weight_decay=0.0
)


def variants(theta: torch.Tensor) -> dict[str, callable]:
    other = torch.empty_like(theta)
    kernel = resolve_kernel("auto", theta, 1 << 20)
    reference = TorchKernel()
    bases = [stream_base(step_seed(3, s), 0) for s in range(max(HORIZONS))]

    def reference_mezo_pass():
        torch.manual_seed(1)
        z = torch.normal(mean=0, std=1, size=theta.size(), dtype=theta.dtype)
        theta.add_(z, alpha=1e-3)

    def randn_add():
        theta.add_(torch.randn(theta.size(), dtype=theta.dtype), alpha=1e-3)

    cases = {
        "copy (memory-bandwidth ceiling)": lambda: other.copy_(theta),
        "reference MeZO pass: manual_seed + normal + add_": reference_mezo_pass,
        "torch.randn + add_": randn_add,
        "plain-torch kernel perturb": lambda: reference.add_noise(theta, bases[0], 1e-3),
        f"{kernel.name} perturb": lambda: kernel.add_noise(theta, bases[0], 1e-3),
        f"{kernel.name} MeZO restore+update": lambda: kernel.fused_update(
            theta, bases[:1], MEZO_UPDATE
        ),
    }
    for streams in HORIZONS:
        update = adamezo_update(streams)
        cases[f"{kernel.name} AdaMeZO update K={streams}"] = lambda s=streams, u=update: (
            kernel.fused_update(theta, bases[:s], u)
        )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=1 << 25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    info = machine()
    dtype = getattr(torch, args.dtype)
    theta = torch.randn(args.numel).to(dtype)
    cases = variants(theta)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(args.rounds + 1):  # round 0 warms up (compilation, page faults)
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            if round_index:
                times[name].append(time.perf_counter() - start)
        print(f"round {round_index} done", flush=True)
    reference_name = "reference MeZO pass: manual_seed + normal + add_"
    rows = {}
    for name, samples in times.items():
        seconds = median(samples)
        rows[name] = {
            "median_seconds": seconds,
            "G_elem_per_s": args.numel / seconds / 1e9,
            "speedup_vs_reference_pass": median(times[reference_name]) / seconds,
        }
    result = {
        "machine": info,
        "numel": args.numel,
        "dtype": args.dtype,
        "rounds": args.rounds,
        "results": rows,
        "samples_seconds": times,
    }
    lines = [
        f"## Noise and update throughput: {args.numel:,} {args.dtype} elements",
        "",
        f"Median of {args.rounds} interleaved rounds (after one warm-up round).",
        "",
        "| pass | median s | G elem/s | × reference MeZO pass |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['median_seconds']:.4f} | {row['G_elem_per_s']:.3f} | "
            f"{row['speedup_vs_reference_pass']:.2f} |"
        )
    write(f"noise_throughput_{args.dtype}", result, lines)


if __name__ == "__main__":
    main()
