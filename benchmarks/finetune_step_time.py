"""AdaMeZO / MeZO step time as the pipeline itself logs it: real `adamezo finetune` runs on SST-2.

Issue 13 asks that the step-time ratio read from real fine-tuning logs agree with
``step_time.py --model smollm2-sst2`` within 0.05. This script runs ``adamezo finetune`` once per
entry of ``--order`` (one process after the other, the same seed, so both optimizers see the same
batches), full tuning of SmolLM2-135M at batch 16, with no evaluation before or during training,
no test and no model export, and reads each run's ``log.jsonl``: every train record carries
``step_cpu_seconds`` (the process's CPU time of that step, which other jobs on a loaded machine do
not inflate) and ``step_seconds`` (wall clock). The first ``--skip`` steps (default 10: numba
compiles its kernels in step 1, and AdaMeZO's window of K = 10 directions fills until step 10)
are left out.
The load average is sampled every 10 s while the runs go.

An entry of ``--order`` may name a precision after a colon: ``mezo:bf16`` (or ``fp16``) runs the
forward passes under autocast with float32 weights (``--mixed-precision``), ``mezo:bfloat16`` (or
``float16``) stores the weights in that dtype (``--dtype``); a plain ``mezo`` is float32. Each
precision's step time is then compared with its optimizer's float32 runs (pooled medians, and
step by step on the same batch), and the CPU's bfloat16 instructions (``avx512_bf16``,
``amx_bf16``) are recorded: without them a CPU computes bfloat16 by conversion, slower than float32.

    OMP_NUM_THREADS=1 python benchmarks/finetune_step_time.py --data-dir DATA --runs-dir DIR
    python benchmarks/finetune_step_time.py ... --order mezo,mezo:bf16,mezo:bfloat16,mezo \
        --out benchmarks/results/precision --steps 15 --skip 5

With ``--logs-only`` it reads the run directories already in ``--runs-dir`` instead of running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, median, write

RAN = "finetune_step_time.json"
"""Written into each run directory: the command, its wall time and the load while it ran."""


PRECISION_FLAGS = {
    "bf16": ("--mixed-precision", "bf16"),
    "fp16": ("--mixed-precision", "fp16"),
    "bfloat16": ("--dtype", "bfloat16"),
    "float16": ("--dtype", "float16"),
}
"""What an ``--order`` entry's precision (after the colon) adds to the command."""
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")


def parse_entry(entry: str) -> tuple[str, str | None]:
    """``"mezo:bf16"`` -> ("mezo", "bf16"); ``"mezo"`` -> ("mezo", None): float32."""
    optimizer, _, precision = entry.partition(":")
    if precision and precision not in PRECISION_FLAGS:
        raise SystemExit(
            f"--order entry {entry!r}: the precision after ':' must be one of "
            f"{sorted(PRECISION_FLAGS)}"
        )
    return optimizer, precision or None


def cpu_bf16_capability() -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` the CPU has (the flags lscpu lists, from /proc/cpuinfo)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {flag: flag in flags for flag in CPU_FLAGS}


def run_dir_of(runs_dir: Path, index: int, entry: str) -> Path:
    return runs_dir / f"{index}-{entry.replace(':', '-')}"


def finetune_command(args, entry: str, run_dir: Path) -> list[str]:
    optimizer, precision = parse_entry(entry)
    extra = list(PRECISION_FLAGS[precision]) if precision else []
    return [
        sys.executable,
        "-m",
        "adamezo",
        "finetune",
        "--model",
        "smollm2-135m",
        "--task",
        "sst2",
        "--optimizer",
        optimizer,
        "--tuning",
        "full",
        "--batch-size",
        "16",
        "--steps",
        str(args.steps),
        "--seed",
        "0",
        "--data-dir",
        args.data_dir,
        "--kernel",
        "numba",
        "--no-eval-at-start",
        "--eval-every",
        str(10 * args.steps),
        "--n-dev",
        "16",  # the one dev evaluation after the last step: small, and not in any step's time
        "--no-test",
        "--no-keep-best",
        "--no-save-model",
        "--no-progress",
        "--output-dir",
        str(run_dir),
        "--overwrite",
        *extra,
    ]


def run_one(args, entry: str, run_dir: Path) -> dict:
    command = finetune_command(args, entry, run_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    loads = [(0.0, os.getloadavg()[0])]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    while process.poll() is None:
        time.sleep(10)
        loads.append((round(time.perf_counter() - started, 1), os.getloadavg()[0]))
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit status {process.returncode}")
    ran = {
        "command": " ".join(["python", *command[1:]]),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average_1min": loads,
    }
    (run_dir / RAN).write_text(json.dumps(ran) + "\n")
    return ran


def finished(run_dir: Path, steps: int) -> dict | None:
    """What run_one returned for a finished run in ``run_dir``, or None."""
    if not (run_dir / RAN).is_file() or len(read_steps(run_dir)) != steps:
        return None
    return json.loads((run_dir / RAN).read_text())


def read_steps(run_dir: Path) -> list[dict]:
    records = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "train"]
    if steps and "step_cpu_seconds" not in steps[0]:
        raise SystemExit(
            f"{run_dir}/log.jsonl has no step_cpu_seconds: written before the loop logged it"
        )
    return steps


def summary(steps: list[dict], skip: int) -> dict:
    timed = [r for r in steps if r["step"] > skip]
    cpu = [r["step_cpu_seconds"] for r in timed]
    wall = [r["step_seconds"] for r in timed]
    return {
        "timed_steps": len(timed),
        "step_cpu_seconds": {"median": median(cpu), "mean": statistics.fmean(cpu)},
        "step_seconds": {"median": median(wall), "mean": statistics.fmean(wall)},
        "first_step_cpu_seconds": steps[0]["step_cpu_seconds"],
        "skipped_steps": timed[-1].get("skipped_steps"),
    }


def pooled_median(steps_of: dict[str, list[list[dict]]], entry: str, key: str, skip: int) -> float:
    """The median step of every timed step of every run of ``entry``."""
    return median([r[key] for steps in steps_of[entry] for r in steps if r["step"] > skip])


def step_ratios(a: list[dict], b: list[dict], key: str, skip: int) -> list[float]:
    """Run a's step / run b's step on the same batch (same seed), step by step."""
    return [x[key] / y[key] for x, y in zip(a, b, strict=True) if x["step"] > skip]


def compare(steps_of: dict[str, list[list[dict]]], a: str, b: str, skip: int) -> dict:
    """``a`` against ``b``: the ratio of their pooled median steps, and the median over steps of
    a's step / b's step on the same batch (the k-th run of a paired with the k-th of b)."""
    pairs = list(zip(steps_of[a], steps_of[b], strict=False))
    out: dict = {}
    for key in ("step_cpu_seconds", "step_seconds"):
        out[key] = pooled_median(steps_of, a, key, skip) / pooled_median(steps_of, b, key, skip)
        out[f"{key}_paired_by_step"] = median(
            [r for x, y in pairs for r in step_ratios(x, y, key, skip)]
        )
    out["per_pair_cpu"] = [median(step_ratios(x, y, "step_cpu_seconds", skip)) for x, y in pairs]
    out["per_pair_wall"] = [median(step_ratios(x, y, "step_seconds", skip)) for x, y in pairs]
    return out


def comparisons(entries: list[str], steps_of: dict, skip: int) -> dict[str, dict]:
    """AdaMeZO against MeZO (float32), and each precision against its optimizer's float32."""
    out = {}
    if "adamezo" in steps_of and "mezo" in steps_of:
        out["adamezo / mezo"] = compare(steps_of, "adamezo", "mezo", skip)
    for entry in dict.fromkeys(entries):
        optimizer, precision = parse_entry(entry)
        if precision and optimizer in steps_of:
            out[f"{entry} / {optimizer}"] = compare(steps_of, entry, optimizer, skip)
    return out


def markdown(args, runs: list[dict], ratios: dict[str, dict], cpu: dict[str, bool]) -> list[str]:
    lines = [
        f"`adamezo finetune` on SST-2, SmolLM2-135M full tuning, batch 16, {args.steps} steps per "
        "run, the runs one after the other in the order below (same seed, same batches); "
        f"per-step times from each run's log.jsonl, the first {args.skip} steps left out "
        "(kernel compilation, AdaMeZO's window of K = 10 filling). A precision after the colon: "
        "`bf16`/`fp16` = forward passes under autocast, float32 weights (`--mixed-precision`); "
        "`bfloat16`/`float16` = weights in that dtype (`--dtype`).",
        "",
        "CPU flags: " + ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in cpu.items()),
        "",
        "| run | entry | median step CPU s | mean | median step wall s | mean | "
        "load avg (1 min) during run |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, run in enumerate(runs):
        loads = [x for _, x in run.get("load_average_1min", [])]
        load = f"{min(loads):.2f}–{max(loads):.2f}" if loads else "not recorded"
        lines.append(
            f"| {index} | {run['entry']} | {run['step_cpu_seconds']['median']:.3f} | "
            f"{run['step_cpu_seconds']['mean']:.3f} | {run['step_seconds']['median']:.3f} | "
            f"{run['step_seconds']['mean']:.3f} | {load} |"
        )
    lines += ["", "| ratio | pooled median, CPU | wall | paired by step, CPU | wall |"]
    lines += ["|---|---|---|---|---|"]
    for name, r in ratios.items():
        lines.append(
            f"| {name} | **{r['step_cpu_seconds']:.3f}** | {r['step_seconds']:.3f} | "
            f"**{r['step_cpu_seconds_paired_by_step']:.3f}** | "
            f"{r['step_seconds_paired_by_step']:.3f} |"
        )
    lines += ["", "Pair by pair (k-th run of each), CPU time / wall clock:"]
    for name, r in ratios.items():
        cpu_pairs = ", ".join(f"{x:.3f}" for x in r["per_pair_cpu"])
        wall_pairs = ", ".join(f"{x:.3f}" for x in r["per_pair_wall"])
        lines.append(f"- {name}: {cpu_pairs} / {wall_pairs}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="directory holding sst2/")
    parser.add_argument("--runs-dir", required=True, type=Path, help="where the runs are written")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--skip", type=int, default=10, help="leave out the first N steps")
    parser.add_argument(
        "--order",
        default="mezo,adamezo",
        help="runs, one after the other: optimizer[:precision], precision one of "
        f"{', '.join(PRECISION_FLAGS)} (default float32)",
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--logs-only", action="store_true", help="read existing runs only")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs, run the rest")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    entries = args.order.split(",")
    for entry in entries:
        parse_entry(entry)  # a bad precision fails before any run
    info = machine()
    info["torch_threads"] = args.threads  # the runs' threads, not this process's
    info["cpu_flags"] = cpu_bf16_capability()
    runs, steps_of = [], {}
    for index, entry in enumerate(entries):
        run_dir = run_dir_of(args.runs_dir, index, entry)
        ran = finished(run_dir, args.steps) if args.logs_only or args.reuse else None
        if ran is None and args.logs_only:
            raise SystemExit(f"{run_dir}: no finished run")
        ran = ran if ran is not None else run_one(args, entry, run_dir)
        steps = read_steps(run_dir)
        steps_of.setdefault(entry, []).append(steps)
        optimizer, precision = parse_entry(entry)
        run = {"entry": entry, "optimizer": optimizer, "precision": precision or "float32"}
        runs.append({**run, **ran, **summary(steps, args.skip)})
        print(json.dumps(runs[-1]), flush=True)

    ratios = comparisons(entries, steps_of, args.skip)
    result = {"machine": info, "steps": args.steps, "skip": args.skip, "runs": runs}
    result["ratios"] = ratios
    write("finetune_step_time", result, markdown(args, runs, ratios, info["cpu_flags"]), args.out)


if __name__ == "__main__":
    main()
