"""The numba kernel against an older copy of itself: fused-update and perturb time per element,
both kernels in one process, interleaved round by round, measured as the calling thread's CPU
time (so that other jobs on a shared machine count less), one thread.

    git show REV:src/adamezo/kernels/numba_cpu.py > /tmp/numba_cpu_REV.py
    python benchmarks/kernel_compare.py /tmp/numba_cpu_REV.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import machine, median, write
from step_time import load_kernel

from adamezo.kernels import FusedUpdate, TorchKernel
from adamezo.noise import step_seed, stream_base


def update(streams: int, second_moment: bool) -> FusedUpdate:
    grads = np.random.default_rng(streams).standard_normal(streams)
    return FusedUpdate(
        restore=1e-3,
        m_coefs=tuple(float(0.3 * 0.7**k * g) for k, g in enumerate(grads)),
        v_coefs=tuple(float(0.1 * 0.9**k * g * g) for k, g in enumerate(grads))
        if second_moment
        else None,
        gain=1.0,
        eps=1e-8,
        lr=1e-7,
        weight_decay=0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="an older kernels/numba_cpu.py")
    parser.add_argument("--numel", type=int, default=1 << 23)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine()
    from adamezo.kernels.numba_cpu import NumbaKernel

    kernels = {"baseline": load_kernel(args.baseline), "current": NumbaKernel()}
    bases = [stream_base(step_seed(7, s), 0) for s in range(10)]
    cases = {
        "perturb (add_noise)": lambda k, x: k.add_noise(x, bases[0], 1e-3),
        "MeZO update (K = 1)": lambda k, x: k.fused_update(x, bases[:1], update(1, False)),
        "AdaMeZO update (K = 10)": lambda k, x: k.fused_update(x, bases, update(10, True)),
    }
    # Both kernels must agree with the reference bit for bit before they are timed.
    check = torch.randn(50_001)
    for case in cases.values():
        expected = check.clone()
        case(TorchKernel(4096), expected)
        for kernel in kernels.values():
            actual = check.clone()
            case(kernel, actual)
            assert torch.equal(actual.view(torch.int32), expected.view(torch.int32))
    x = torch.randn(args.numel)
    samples = {case: {name: [] for name in kernels} for case in cases}
    for round_index in range(args.rounds + 1):  # round 0 compiles
        names = list(kernels) if round_index % 2 else list(kernels)[::-1]
        for case, run in cases.items():
            for name in names:
                start = time.thread_time()
                run(kernels[name], x)
                seconds = time.thread_time() - start
                if round_index:
                    samples[case][name].append(seconds / args.numel * 1e9)
    summary = {
        case: {name: median(values) for name, values in rows.items()}
        for case, rows in samples.items()
    }
    ratios = {
        case: median([c / b for b, c in zip(rows["baseline"], rows["current"], strict=True)])
        for case, rows in samples.items()
    }
    result = {
        "machine": info,
        "baseline": args.baseline,
        "numel": args.numel,
        "rounds": args.rounds,
        "median_ns_per_element": summary,
        "median_ratio_current_over_baseline": ratios,
        "samples_ns_per_element": samples,
    }
    lines = [
        f"## numba kernel, current against `{args.baseline}`",
        "",
        f"float32, {args.numel} elements, one thread, thread CPU time, median of {args.rounds} "
        "interleaved rounds; both kernels checked bitwise equal to the reference first.",
        "",
        "| pass | baseline ns/element | current ns/element | current / baseline |",
        "|---|---|---|---|",
    ]
    for case, row in summary.items():
        lines.append(
            f"| {case} | {row['baseline']:.3f} | {row['current']:.3f} | {ratios[case]:.3f} |"
        )
    write("kernel_compare", result, lines)


if __name__ == "__main__":
    main()
