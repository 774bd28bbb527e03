"""Which bits-to-normal mapping the noise uses: throughput of a perturb pass θ += c·z.

Compares, side by side in one run on the same float32 buffer: the reference-style torch noise
(``torch.manual_seed`` + ``torch.normal`` + ``add_``, and ``torch.randn`` + ``add_``) and numba
loops with one SplitMix64 hash per element or per four elements, mapped through a 4096- or
65536-entry quantile table, or through Box–Muller. Writes ``benchmarks/results/noise_mapping.json``.

    .venv/bin/python benchmarks/noise_mapping.py [--elements 67108864] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from statistics import NormalDist

import numba
import numpy as np
import torch

GAMMA = np.uint64(0x9E3779B97F4A7C15)


def quantile_table(bits: int) -> np.ndarray:
    n = 1 << bits
    values = np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    return (values / np.sqrt((values**2).mean())).astype(np.float32)


@numba.njit(inline="always")
def mix64(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(parallel=True)
def hash_per_element(x, base, c, table):
    for i in numba.prange(x.size):
        word = mix64(base + np.uint64(i) * GAMMA)
        x[i] += c * table[word >> np.uint64(52)]


@numba.njit(parallel=True)
def hash_per_four(x, base, c, table, bits):
    shift = np.uint64(16 - bits)
    mask = np.uint64((1 << bits) - 1)
    for q in numba.prange(x.size // 4):
        word = mix64(base + np.uint64(q) * GAMMA)
        for lane in range(4):
            x[4 * q + lane] += c * table[(word >> (np.uint64(16 * lane) + shift)) & mask]


@numba.njit(parallel=True)
def box_muller(x, base, c):
    for q in numba.prange(x.size // 2):
        word = mix64(base + np.uint64(q) * GAMMA)
        u1 = (np.float32(word >> np.uint64(40)) + np.float32(0.5)) * np.float32(2.0**-24)
        u2 = np.float32((word >> np.uint64(8)) & np.uint64(0xFFFFFF)) * np.float32(2.0**-24)
        radius = np.sqrt(np.float32(-2.0) * np.log(u1))
        angle = np.float32(2 * math.pi) * u2
        x[2 * q] += c * radius * np.cos(angle)
        x[2 * q + 1] += c * radius * np.sin(angle)


def best_of(fn, repeats: int) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1 << 26)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/noise_mapping.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    n, c, base = args.elements, np.float32(1e-3), np.uint64(12345)
    x = np.zeros(n, np.float32)
    xt = torch.from_numpy(x)
    table12, table16 = quantile_table(12), quantile_table(16)

    def torch_normal():
        torch.manual_seed(0)
        xt.add_(torch.normal(0.0, 1.0, size=xt.shape), alpha=1e-3)

    variants = {
        "torch.manual_seed + torch.normal + add_ (original MeZO)": torch_normal,
        "torch.randn + add_": lambda: xt.add_(torch.randn(xt.shape), alpha=1e-3),
        "hash per element, 4096 table": lambda: hash_per_element(x, base, c, table12),
        "hash per 4 elements, 4096 table (chosen)": lambda: hash_per_four(x, base, c, table12, 12),
        "hash per 4 elements, 65536 table": lambda: hash_per_four(x, base, c, table16, 16),
        "Box-Muller, hash per 2 elements": lambda: box_muller(x, base, c),
    }
    results = {name: n / best_of(fn, args.repeats) / 1e9 for name, fn in variants.items()}
    for name, rate in results.items():
        print(f"{rate:6.2f} G elements/s  {name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python benchmarks/noise_mapping.py "
        + f"--elements {n} --repeats {args.repeats}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": load_before,
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.get_num_threads(),
        "elements": n,
        "g_elements_per_s": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
