"""Choose, and check, the toy experiment's zeroth-order learning rates.

Two rules, both from ``adamezo.toy.tuning``, on every (function, zeroth-order optimizer):

* figures — the paper's rule: Adam's lr fixed (recorded in ``adamezo.toy.functions``), and the
  largest rate on a quarter-decade grid whose median trajectory length over seeds 0-4 stays within
  1.5x Adam's. These are the values recorded in ``adamezo/toy/functions.py``.
* speed — the rate with the fewest median steps to 1% of the starting loss (the paper's claim:
  AdaMeZO progresses faster than MeZO where curvature differs across directions); by default for
  MeZO and AdaMeZO only, the two the claim compares.

Writes ``benchmarks/results/toy_learning_rates.md`` (and ``.json``) with the command, the machine
and every median measured. ``--check`` exits 1 if a recorded figure rate differs from the rule.

    .venv/bin/python benchmarks/toy_learning_rates.py [--functions ...] [--optimizers ...] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from adamezo.toy.experiment import OPTIMIZERS
from adamezo.toy.functions import FUNCTIONS
from adamezo.toy.tuning import fastest_learning_rate, log_grid, match_trajectory_length

SEEDS = range(5)
SLACK = 1.5
LENGTH_GRID = log_grid(1e-6, 1.0, per_decade=4)
SPEED_GRID = log_grid(1e-5, 1.0, per_decade=4)
ZEROTH_ORDER = [name for name, spec in OPTIMIZERS.items() if spec.zeroth_order]
RESULTS = Path(__file__).resolve().parent / "results" / "toy_learning_rates"


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "diverged"
    return "—" if math.isinf(value) else f"{value:.4g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", nargs="+", choices=list(FUNCTIONS), default=list(FUNCTIONS))
    parser.add_argument("--optimizers", nargs="+", choices=ZEROTH_ORDER, default=ZEROTH_ORDER)
    parser.add_argument(
        "--speed-optimizers",
        nargs="*",
        choices=ZEROTH_ORDER,
        default=["mezo", "adamezo"],
        help="optimizers to find the fastest rate for (none: only the figure rates)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a recorded rate differs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results path, no suffix")
    args = parser.parse_args()

    started = time.time()
    figure_rows, speed_rows, record, mismatches = [], [], [], []
    for name in args.functions:
        function = FUNCTIONS[name]
        for optimizer in args.optimizers:
            tic = time.perf_counter()
            match = match_trajectory_length(function, optimizer, LENGTH_GRID, SEEDS, slack=SLACK)
            recorded = function.learning_rates.get(optimizer)
            if recorded != match.lr:
                mismatches.append(f"{name}/{optimizer}: recorded {recorded}, rule {match.lr}")
            lengths = ", ".join(f"{lr:g}: {_fmt(v)}" for lr, v in match.lengths.items())
            figure_rows.append(
                f"| {name} | {OPTIMIZERS[optimizer].label} | {match.adam_length:.4g} "
                f"| {match.target:.4g} | **{match.lr:g}** | {recorded} | {lengths} |"
            )
            entry = {
                "function": name,
                "optimizer": optimizer,
                "adam_length": match.adam_length,
                "target": match.target,
                "figure_lr": match.lr,
                "recorded_lr": recorded,
                "median_lengths": {str(k): _length(v) for k, v in match.lengths.items()},
            }
            if optimizer in args.speed_optimizers:
                fast = fastest_learning_rate(function, optimizer, SPEED_GRID, SEEDS)
                speed_rows.append(
                    f"| {name} | {OPTIMIZERS[optimizer].label} | {fast.lr:g} "
                    f"| {_fmt(fast.median_steps)} | {', '.join(_fmt(s) for s in fast.steps)} |"
                )
                entry.update(
                    fastest_lr=_finite(fast.lr),
                    fastest_median_steps=_finite(fast.median_steps),
                    fastest_steps=[_finite(s) for s in fast.steps],
                    median_steps={str(k): _finite(v) for k, v in fast.medians.items()},
                )
            entry["seconds"] = round(time.perf_counter() - tic, 1)
            record.append(entry)
            print(json.dumps(entry), flush=True)

    command = shlex.join([".venv/bin/python", "benchmarks/toy_learning_rates.py", *sys.argv[1:]])
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, torch "
    machine += f"{torch.__version__}, {torch.get_num_threads()} threads"
    lines = [
        "# Toy experiment: learning rates",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Took {time.time() - started:.0f} s. Seeds {SEEDS.start}-{SEEDS.stop - 1}; float64.",
        "",
        "## Figure rates: trajectory length matched to Adam's (the paper's rule)",
        "",
        f"Largest rate on the grid 10^(k/4), {LENGTH_GRID[0]:g} to {LENGTH_GRID[-1]:g}, whose "
        f"median trajectory length stays within {SLACK}x Adam's and with which no seed diverges, "
        "found by bisection (it assumes the length grows with lr; the lengths below are every "
        "point it measured, '—' meaning stopped once past the target, 'diverged' that a seed "
        "did).",
        "",
        "| function | optimizer | Adam's length | target | chosen lr | recorded lr | "
        "median length at each lr tried |",
        "|---|---|---:|---:|---:|---:|---|",
        *figure_rows,
    ]
    if speed_rows:
        lines += [
            "",
            "## Speed rates: fewest median steps to 1% of the starting loss",
            "",
            f"Every rate on the grid 10^(k/4), {SPEED_GRID[0]:g} to {SPEED_GRID[-1]:g}, within "
            "each function's step budget ('—': the median seed never got there).",
            "",
            "| function | optimizer | best lr | median steps to 1% | each seed |",
            "|---|---|---:|---:|---|",
            *speed_rows,
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, "machine": machine, "results": record}, indent=1) + "\n"
    )
    if mismatches:
        print("recorded rates differ from the rule:\n  " + "\n  ".join(mismatches))
    return 1 if args.check and mismatches else 0


def _length(value: float) -> float | str:
    return "diverged" if math.isnan(value) else "above target" if math.isinf(value) else value


def _finite(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else value


if __name__ == "__main__":
    sys.exit(main())
