"""Sub-command ``adamezo sweep``: find the learning rate for a task or one's own data, with one
worker or many sharing an Optuna study; prints the table and writes sweep.json and sweep.png."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from adamezo.finetune.flags import add_run_arguments, config_from_args
from adamezo.optim.registry import OPTIMIZERS

NOT_SWEEP_FLAGS = ("optimizer", "lr", "seed", "output_dir", "resume", "overwrite", "test")
"""Run flags the sweep replaces (by lists, its directory) or decides itself (resume)."""
JSON_FILE, PLOT_FILE = "sweep.json", "sweep.png"


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in OPTIMIZERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer(s) {unknown}: choose among {', '.join(sorted(OPTIMIZERS))}"
        )
    return names


def _lrs(text: str) -> tuple[float, ...] | None:
    if text.strip() == "auto":
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--lr takes 'auto' or comma-separated numbers, e.g. 1e-4,1e-3,1e-2; got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("--lr needs at least one value, or 'auto'")
    return values


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}"
        ) from None


def settings_from_args(args: argparse.Namespace):
    """The :class:`~adamezo.finetune.sweep_settings.SweepSettings` of parsed ``adamezo sweep``
    flags."""
    from adamezo.finetune.sweep_settings import SweepSettings

    return SweepSettings(
        base=config_from_args(args),
        optimizers=args.optimizers,
        lrs=args.lrs,
        seeds=args.seeds,
        output_dir=args.sweep_dir,
        storage=args.storage,
        study_name=args.study_name,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
    )


# ----------------------------------------------------------------------------------- report


def _number(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _selected(row: dict[str, Any], by: str) -> str:
    """The dev score a score-selected row was chosen by (``by`` is ``dev <metric>``)."""
    return _number(row["dev_metrics"].get(by.removeprefix("dev ")), ".4f")


def _plotted(row: dict[str, Any]) -> float | None:
    """What the plot shows of a row: its best dev loss, or the dev score it was selected by."""
    by = row.get("selected_by", "dev loss")
    value = row["best_dev_loss"] if by == "dev loss" else row["dev_metrics"].get(by[4:])
    return value if value is not None and math.isfinite(value) else None


def format_table(results: dict[str, Any]) -> str:
    """One line per finished trial (lr -> best dev loss, dev metric there, forward passes to
    it), then each optimizer's best lr and run directory."""
    lines = [
        f"{'optimizer':<12} {'lr':>8} {'seed':>4} {'best dev loss':>13} {'dev metric':>20} "
        f"{'passes to best':>14}"
    ]
    for row in results["trials"]:
        metric = next(iter(row["dev_metrics"].items()), None)
        shown = f"{metric[0]} {metric[1]:.3f}" if metric and metric[1] is not None else "-"
        loss = "diverged" if row["diverged"] else _number(row["best_dev_loss"], ".4f")
        lines.append(
            f"{row['optimizer']:<12} {row['lr']:>8.0e} {row['seed']:>4} {loss:>13} "
            f"{shown:>20} {_number(row['forward_passes_to_best'], 'd'):>14}"
        )
    for optimizer, best in results["best"].items():
        where = "interior" if best["interior"] else "AT AN EDGE of the grid: widen --lr"
        if not best["settled"]:
            where = "not settled yet (the sweep is unfinished)"
        seeds = ""
        if len(best["seeds"]) > 1:
            seeds = f", mean over seeds {_number(best['mean_best_dev_loss'], '.4f')}"
        by = best.get("selected_by", "dev loss")
        score = "" if by == "dev loss" else f"selected by {by} {_selected(best, by)}, "
        lines.append(
            f"best {optimizer}: lr {best['lr']:g} ({where}), {score}best dev loss "
            f"{_number(best['best_dev_loss'], '.4f')}{seeds}; run {best['run_dir']}"
        )
    if not results["complete"]:
        lines.append("the sweep is not complete: run the same command again to finish it")
    return "\n".join(lines)


def plot_sweep(results: dict[str, Any], path: Path) -> None:
    """Best dev loss against lr (log scale), one line per optimizer (the grid's seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    seeds = {r["seed"] for r in results["trials"]}
    first = min(seeds) if seeds else 0
    for optimizer in dict.fromkeys(r["optimizer"] for r in results["trials"]):
        points = sorted(
            (r["lr"], _plotted(r))
            for r in results["trials"]
            if r["optimizer"] == optimizer and r["seed"] == first
        )
        finite = [(lr, value) for lr, value in points if value is not None]
        if finite:
            ax.plot(*zip(*finite, strict=True), "o-", label=optimizer)
        best = results["best"].get(optimizer)
        if best is not None and _plotted(best) is not None:
            ax.plot([best["lr"]], [_plotted(best)], "k*", markersize=12)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    labels = {r.get("selected_by", "dev loss") for r in results["trials"]}
    ax.set_ylabel(" / ".join(f"best {label}" for label in sorted(labels)) or "best dev loss")
    ax.set_title(f"sweep {results['study']} (star: each optimizer's best)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(results: dict[str, Any], directory: Path) -> None:
    """``directory``/sweep.json and sweep.png, each replaced whole (workers may write at once)."""
    for name, write in (
        (JSON_FILE, lambda p: p.write_text(json.dumps(results, indent=1) + "\n")),
        (PLOT_FILE, lambda p: plot_sweep(results, p)),
    ):
        scratch = directory / f".{name}.{os.getpid()}{Path(name).suffix}"
        write(scratch)
        os.replace(scratch, directory / name)


# ---------------------------------------------------------------------------------- command


def run_sweep_command(args: argparse.Namespace) -> int:
    try:
        from adamezo.finetune.sweep import Worker, sweep_results
    except ImportError as error:
        if error.name not in ("optuna", "sqlalchemy"):
            raise
        print(
            f"adamezo: error: adamezo sweep needs optuna ({error}): pip install 'adamezo[sweep]'",
            file=sys.stderr,
        )
        return 2
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    try:
        settings = settings_from_args(args)
        worker = Worker(settings)
        study = worker.run()
        results = sweep_results(settings, study)
        write_report(results, settings.directory())
    except (ValueError, TypeError, OSError) as error:
        print(f"adamezo: error: {error}", file=sys.stderr)
        return 2
    print(format_table(results))
    directory = settings.directory()
    print(f"trained {len(worker.trained)} trial(s) in this process")
    print(f"sweep files: {(directory / JSON_FILE).resolve()}, {(directory / PLOT_FILE).resolve()}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    sw = subparsers.add_parser(
        "sweep",
        help="find the learning rate: a grid of fine-tuning runs in an Optuna study, shared by "
        "any number of workers",
        description="Fine-tune at a grid of learning rates (and seeds, and optimizers) and pick "
        "the lr of lowest dev loss (highest dev score for a score objective). Takes every flag "
        "of `adamezo finetune` but those the sweep sets per trial. Run the same command in "
        "several processes or on several machines (with --storage) to share the trials; run "
        "it again to resume an interrupted sweep (a finished one trains nothing).",
    )
    add_run_arguments(sw, exclude=NOT_SWEEP_FLAGS)
    _add_sweep_arguments(sw.add_argument_group("the sweep"))
    _add_sharing_arguments(sw.add_argument_group("sharing the sweep between workers"))
    sw.set_defaults(func=run_sweep_command)


def _add_sweep_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--optimizer",
        dest="optimizers",
        type=_names,
        default=("adamezo",),
        metavar="NAME[,NAME...]",
        help="one or more optimizers, each at its own best lr (default adamezo)",
    )
    group.add_argument(
        "--lr",
        dest="lrs",
        type=_lrs,
        default=None,
        metavar="LR[,LR...]|auto",
        help="the learning rates to try, or auto (default): 4 values 3x apart around the "
        "optimizer's default (c/10, c/3, c, 3c), grown past an edge best until it is interior",
    )
    group.add_argument(
        "--seeds",
        type=_seeds,
        default=(0,),
        metavar="S[,S...]",
        help="the first seed runs the lr grid, the others the grid's best lr (default 0)",
    )
    group.add_argument(
        "--output-dir",
        dest="sweep_dir",
        default=None,
        metavar="DIR",
        help="the sweep's directory: sweep.json, sweep.png, sweep.db and runs/<trial>/ "
        "(default runs/sweep-{task}-{tuning})",
    )
    group.add_argument(
        "--test",
        action="store_true",
        help="also evaluate every trial on the test split (default: only the dev split; test "
        "the chosen run with `adamezo eval --run RUN --split test`)",
    )


def _add_sharing_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--storage",
        default=None,
        help="SQLAlchemy URL of the study's database, e.g. postgresql://user:pass@host/db, "
        "shared by every worker (default: sqlite in the sweep's directory)",
    )
    group.add_argument(
        "--study-name", default=None, help="the study's name (default: the directory's name)"
    )
    group.add_argument(
        "--heartbeat-interval",
        type=int,
        default=60,
        help="seconds between a running trial's heartbeats (default 60)",
    )
    group.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="seconds without a heartbeat after which another worker resumes the trial from its "
        "checkpoint (default 2x the interval)",
    )
