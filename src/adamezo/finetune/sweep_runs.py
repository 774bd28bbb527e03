"""One trial's run directory: train it, resume it from the checkpoint an earlier attempt left,
or just read it when it has finished; what a sweep needs of it, from its log."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.records import LOG, EvalRecord, TrainRecord, read_log
from adamezo.finetune.rundir import RunDirectory
from adamezo.finetune.scores import DEV_METRIC


def _objective(run_dir: Path) -> str:
    """The objective a run directory's config names (a run not yet started: the loss)."""
    config = run_dir / "config.json"
    return json.loads(config.read_text()).get("objective", "loss") if config.is_file() else "loss"


def run_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What a sweep needs of a run, read from its log.jsonl: its best evaluation after training
    began (the zero-shot one is left out, so an lr that never improves on it cannot tie with one
    that does) by the run's own selection rule — the lowest dev loss, or the highest dev score of
    an accuracy, F1, exact-match or reward objective — with ``selection`` (lower is better: the
    dev loss, or minus the score) and ``selected_by``; its dev loss, step, dev metrics and the
    training forward passes up to it."""
    run_dir = Path(run_dir)
    metric = DEV_METRIC.get(_objective(run_dir))
    records = read_log(run_dir / LOG, cut_tail_ok=True)
    evals = [
        r for r in records if isinstance(r, EvalRecord) and r.step > 0 and r.dev_loss is not None
    ]

    def selection(record: EvalRecord) -> float:
        return record.dev_loss if metric is None else -float(record.scores[f"dev_{metric}"])

    summary: dict[str, Any] = {
        "best_dev_loss": math.inf,
        "best_step": None,
        "selection": math.inf,
        "selected_by": "dev loss" if metric is None else f"dev {metric}",
    }
    if evals:
        best = min(evals, key=selection)  # the first of equals, as keep-best keeps it
        passes = {r.step: r.forward_passes for r in records if isinstance(r, TrainRecord)}
        summary.update(
            best_dev_loss=best.dev_loss,
            best_step=best.step,
            selection=selection(best),
            dev_metrics={
                k.removeprefix("dev_"): v
                for k, v in best.scores.items()
                if k.startswith("dev_") and k not in ("dev_loss", "dev_forward_calls")
            },
            forward_passes_to_best=passes.get(best.step),
        )
    return summary


def resume_or_start(config: FinetuneConfig) -> tuple[FinetuneConfig, bool]:
    """``config`` set to resume its run directory from the checkpoint an earlier attempt left
    there, else to start it (over, if an attempt stopped before its first checkpoint); and
    whether it resumes."""
    run_dir = Path(config.output_dir)
    started = (run_dir / "config.json").is_file()
    # an attempt cut off before its first checkpoint has nothing to resume: start it over
    resumed = started and RunDirectory(run_dir).nothing_to_resume() is None
    return replace(config, resume=resumed, overwrite=started and not resumed), resumed


def train_trial(config: FinetuneConfig) -> dict[str, Any]:
    """Train (or resume, or just read) the run directory of one trial; its :func:`run_summary`
    and how it went: ``trained``, ``resumed`` (from a checkpoint of an earlier attempt),
    ``diverged`` (best dev loss then inf)."""
    from adamezo.finetune import loop

    run_dir = Path(config.output_dir)
    resumed = trained = diverged = False
    if not (run_dir / "metrics.json").is_file():
        config, resumed = resume_or_start(config)
        trained = True
        try:
            loop.run_finetune(config)
        except loop.TrainingDivergedError:
            diverged = True
    summary = run_summary(run_dir)
    if diverged:
        summary["best_dev_loss"] = summary["selection"] = math.inf
    return summary | {"trained": trained, "resumed": resumed, "diverged": diverged}
