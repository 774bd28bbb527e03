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

    OMP_NUM_THREADS=1 python benchmarks/finetune_step_time.py --data-dir DATA --runs-dir DIR

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


def finetune_command(args, optimizer: str, run_dir: Path) -> list[str]:
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
    ]


def run_one(args, optimizer: str, run_dir: Path) -> dict:
    command = finetune_command(args, optimizer, run_dir)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="directory holding sst2/")
    parser.add_argument("--runs-dir", required=True, type=Path, help="where the runs are written")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--skip", type=int, default=10, help="leave out the first N steps")
    parser.add_argument("--order", default="mezo,adamezo", help="runs, one after the other")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--logs-only", action="store_true", help="read existing runs only")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs, run the rest")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    info = machine()
    info["torch_threads"] = args.threads  # the runs' threads, not this process's
    runs = []
    for index, optimizer in enumerate(args.order.split(",")):
        run_dir = args.runs_dir / f"{index}-{optimizer}"
        ran = finished(run_dir, args.steps) if args.logs_only or args.reuse else None
        if ran is None and args.logs_only:
            raise SystemExit(f"{run_dir}: no finished run")
        ran = ran if ran is not None else run_one(args, optimizer, run_dir)
        runs.append({"optimizer": optimizer, **ran, **summary(read_steps(run_dir), args.skip)})
        print(json.dumps(runs[-1]), flush=True)

    def pooled(optimizer: str, key: str) -> float:
        steps = [
            r[key]
            for run in runs
            if run["optimizer"] == optimizer
            for r in read_steps(args.runs_dir / f"{runs.index(run)}-{optimizer}")
            if r["step"] > args.skip
        ]
        return median(steps)

    logs = {
        name: [
            read_steps(args.runs_dir / f"{i}-{run['optimizer']}")
            for i, run in enumerate(runs)
            if run["optimizer"] == name
        ]
        for name in ("adamezo", "mezo")
    }
    # The k-th AdaMeZO run is paired with the k-th MeZO run (adjacent in an ABBA order).
    pairs = list(zip(logs["adamezo"], logs["mezo"], strict=False))

    def step_ratios(ada: list[dict], mezo: list[dict], key: str) -> list[float]:
        """AdaMeZO's step / MeZO's step on the same batch, step by step."""
        return [a[key] / m[key] for a, m in zip(ada, mezo, strict=True) if a["step"] > args.skip]

    def paired(key: str) -> float:
        """Median over steps of AdaMeZO's step / MeZO's step on the same batch, all run pairs."""
        return median([r for ada, mezo in pairs for r in step_ratios(ada, mezo, key)])

    per_pair = [
        {
            "median_step_ratio_cpu": median(step_ratios(ada, mezo, "step_cpu_seconds")),
            "median_step_ratio_wall": median(step_ratios(ada, mezo, "step_seconds")),
        }
        for ada, mezo in pairs
    ]

    ratios = {
        key: pooled("adamezo", key) / pooled("mezo", key)
        for key in ("step_cpu_seconds", "step_seconds")
    }
    paired_ratios = {key: paired(key) for key in ("step_cpu_seconds", "step_seconds")}
    result = {
        "machine": info,
        "steps": args.steps,
        "runs": runs,
        "ratio_adamezo_mezo": ratios,
        "ratio_adamezo_mezo_paired_by_step": paired_ratios,
        "per_pair": per_pair,
    }
    lines = [
        f"`adamezo finetune` on SST-2, SmolLM2-135M full tuning, batch 16, {args.steps} steps per "
        "run, the runs one after the other in the order below (same seed, same batches); "
        f"per-step times from each run's log.jsonl, the first {args.skip} steps left out "
        "(kernel compilation, AdaMeZO's window of K = 10 filling).",
        "",
        "| run | optimizer | median step CPU s | mean | median step wall s | mean | "
        "load avg (1 min) during run |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, run in enumerate(runs):
        loads = [x for _, x in run.get("load_average_1min", [])]
        load = f"{min(loads):.2f}–{max(loads):.2f}" if loads else "not recorded"
        lines.append(
            f"| {index} | {run['optimizer']} | {run['step_cpu_seconds']['median']:.3f} | "
            f"{run['step_cpu_seconds']['mean']:.3f} | {run['step_seconds']['median']:.3f} | "
            f"{run['step_seconds']['mean']:.3f} | {load} |"
        )
    lines += [
        "",
        f"AdaMeZO / MeZO, median step over all runs of each: **{ratios['step_cpu_seconds']:.3f}** "
        f"by CPU time, {ratios['step_seconds']:.3f} by wall clock. Median over steps of "
        "AdaMeZO's step / MeZO's step on the same batch (runs paired in order): "
        f"**{paired_ratios['step_cpu_seconds']:.3f}** by CPU time, "
        f"{paired_ratios['step_seconds']:.3f} by wall clock.",
        "",
        "The same, pair by pair (k-th AdaMeZO run with the k-th MeZO run), CPU time: "
        + ", ".join(f"{p['median_step_ratio_cpu']:.3f}" for p in per_pair)
        + "; wall clock: "
        + ", ".join(f"{p['median_step_ratio_wall']:.3f}" for p in per_pair)
        + ".",
    ]
    name = "finetune_step_time"
    write(name, result, lines, args.out)


if __name__ == "__main__":
    main()
