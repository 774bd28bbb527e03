"""Peak memory of FZOO, LOZO, LOZO-M and ZO-Muon against MeZO's, each method in a fresh process.

Each method runs alone in a new Python process (``--worker``): it builds the workload of
``method_step_time.py`` (SmolLM2-135M's SST-2 objective, batch 16; ``--random-weights`` builds the
architecture with random weights instead of reading the real ones: the same shapes, so the same
memory), takes one warm-up step (numba loads its compiled passes, ZO-Muon factorises its
projections), resets the peak, and takes ``--steps`` more steps on new batches with real forward
passes. MeZO runs first and again last, so that the table shows how much two runs of one method
differ.

Why the resident set: torch's CPU tensors, numba's scratch and BLAS's buffers are allocated outside
Python's allocator, so ``tracemalloc`` sees none of them, and torch keeps no allocation statistics
for the CPU. The kernel's peak resident set (VmHWM in /proc/self/status, what ``ru_maxrss``
reports) counts every byte the process holds; writing 5 to /proc/self/clear_refs resets it to the
current resident set, so the peak below is that of the steady-state steps, not of the imports, the
model's construction or numba's loading. Each worker runs with a fixed glibc mmap threshold
(128 KiB), so that freed tensors leave the resident set at once and the peak follows the live
memory.

Reported per method: that peak, and its growth over the resident set just before the steps (what
the steps add: the forward pass's activations, perturbed copies, the optimizer's transients); the
state beyond the model (``state_dict`` tensors and caches, as ``method_step_time.py`` counts it);
and the largest tensor one step allocates (a torch dispatch mode; views excluded), in a step whose
closure makes no forward pass, so that it is the optimizer's own: a model-sized buffer would show
there.

    python benchmarks/method_memory.py --random-weights --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _common import machine, set_threads, smollm2_parser, write

METHODS = ("mezo", "fzoo", "lozo", "lozo-m", "zo-muon")


def status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(args) -> dict:
    """One method's measurements, in this (fresh) process."""
    from method_step_time import state_bytes
    from step_time import build_sst2

    from adamezo.allocations import LargestAllocation
    from adamezo.optim.registry import optimizer_entry

    model, closure_for, _ = build_sst2(args.data_dir, random_weights=args.random_weights)
    params = [p.requires_grad_(True) for p in model.parameters()]
    options = {} if args.perturbation == "auto" else {"perturbation": args.perturbation}
    optimizer = optimizer_entry(args.worker).build(
        params, lr=1e-9, perturbation_scale=1e-3, seed=1, **options
    )
    optimizer.step(closure_for(0))
    Path("/proc/self/clear_refs").write_text("5")
    before = status_bytes("VmRSS")
    for index in range(1, args.steps + 1):
        optimizer.step(closure_for(index))
    peak = status_bytes("VmHWM")
    generator = torch.Generator().manual_seed(0)
    with LargestAllocation() as seen:
        optimizer.step(lambda: torch.rand((), generator=generator))
    return {
        "peak_bytes": peak,
        "resident_before_steps_bytes": before,
        "peak_growth_bytes": peak - before,
        "state_bytes": state_bytes(optimizer),
        "largest_allocation_bytes": seen.bytes,
        "largest_parameter_bytes": max(p.numel() * p.element_size() for p in params),
        "model_bytes": sum(p.numel() * p.element_size() for p in params),
        "passes_per_step": len(optimizer.passes),
    }


def run_worker(name: str, args) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, __file__, "--worker", name, "--json", str(out)]
        command += ["--data-dir", args.data_dir, "--steps", str(args.steps)]
        command += ["--perturbation", args.perturbation]
        command += ["--random-weights"] * args.random_weights
        command += ["--threads", str(args.threads)] if args.threads else []
        # A fixed mmap threshold: glibc then returns every large free block to the system at once
        # (its default raises the threshold after a free and keeps such blocks in the heap), so
        # the resident set follows the live tensors and the growth below is the steps' own.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 17)}
        subprocess.run(command, check=True, cwd=Path(__file__).parent, env=env)
        return json.loads(out.read_text())


def markdown(rows: dict[str, dict], args) -> list[str]:
    mezo = rows["mezo"]
    model_bytes = mezo["model_bytes"]
    lines = [
        f"Workload: {'random weights in ' if args.random_weights else ''}SmolLM2-135M's "
        f"architecture (fp32), SST-2 objective, batch 16; perturbation {args.perturbation}; each "
        f"method in a fresh process: one warm-up step, the peak reset, then {args.steps} steps "
        "with forward passes. Peak: the process's peak resident set (VmHWM). Growth: the peak "
        "over the resident set before those steps. Largest allocation: in one more step whose "
        "closure makes no forward pass.",
        "",
        "| method | passes/step | peak MB | peak / MeZO's | growth MB | growth / MeZO's "
        "| state beyond model | largest allocation MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['passes_per_step']} | {r['peak_bytes'] / 1e6:.1f} | "
            f"{r['peak_bytes'] / mezo['peak_bytes']:.3f} | {r['peak_growth_bytes'] / 1e6:.1f} | "
            f"{r['peak_growth_bytes'] / mezo['peak_growth_bytes']:.2f} | "
            f"{r['state_bytes'] / 1e6:.2f} MB ({100 * r['state_bytes'] / model_bytes:.2f}%) | "
            f"{r['largest_allocation_bytes'] / 1e6:.1f} |"
        )
    largest_param = mezo["largest_parameter_bytes"] / 1e6
    lines += [
        "",
        f"Model: {model_bytes / 1e6:.1f} MB; its largest tensor (the embedding): "
        f"{largest_param:.1f} MB.",
    ]
    return lines


def main() -> None:
    parser = smollm2_parser(__doc__, random_weights=True)
    parser.add_argument("--steps", type=int, default=2, help="measured steps per method")
    parser.add_argument("--perturbation", default="auto", choices=["auto", "exact", "in_place"])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args)
    if args.worker:
        Path(args.json).write_text(json.dumps(worker(args)))
        return
    info = machine()
    rows = {}
    for name in (*METHODS, "mezo"):
        label = "mezo (again, last)" if name in rows else name
        rows[label] = run_worker(name, args)
        print(f"{label}: {rows[label]}", flush=True)
    result = {"steps": args.steps, "perturbation": args.perturbation, "methods": rows}
    result["machine"] = info
    suffix = "" if args.perturbation == "auto" else f"_{args.perturbation}"
    write(
        f"method_memory{suffix}",
        result,
        markdown(rows, args),
        out=args.out,
    )


if __name__ == "__main__":
    main()
