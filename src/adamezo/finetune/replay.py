"""Rebuild a fine-tuning run's weights from its base model and log alone.

A zeroth-order run's train records hold every pass's loss in full precision and the lr of each
step (see :mod:`adamezo.replay`), and its first record (``"type": "start"``) a SHA-256 of the
weights it started from. Replaying builds the model and optimizer from ``config.json`` exactly as
the run did, checks the fingerprint, and re-applies the steps: the result is bitwise the run's
weights on the same dtype, device and kernel, written as a model or adapter directory like the
run's ``model/``. A log of a few hundred bytes per step thus stands for weights of any size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from adamezo.finetune.builder import build_run, fingerprint
from adamezo.finetune.progress import progress_bar
from adamezo.finetune.records import LOG, REPLAY_FORMAT, StartRecord, TrainRecord
from adamezo.replay import ReplayError, apply_step


@dataclass
class ReplayResult:
    output: Path
    step: int
    """The step whose weights were rebuilt."""
    steps_replayed: int
    model: torch.nn.Module
    tokenizer: Any


def replay_run(
    run_dir: str | Path,
    output: str | Path,
    *,
    step: int | None = None,
    device: str | None = None,
    progress: bool = False,
) -> ReplayResult:
    """Rebuild the weights of ``step`` of the run in ``run_dir`` (default: the weights the run
    ends with, its best step when it keeps the best) and write them to ``output`` as the run would
    have exported them. Raises :class:`ReplayError` for a log that cannot rebuild them (written
    without replay records, cut short, or from another base model)."""
    from adamezo.finetune.config import FinetuneConfig
    from adamezo.finetune.models import check_device
    from adamezo.finetune.rundir import RunDirectory
    from adamezo.optim.registry import optimizer_entry

    run = RunDirectory(run_dir)
    raw = run.read_config()
    if raw is None:
        raise ReplayError(f"{str(run.path)!r} is not a run directory (no config.json)")
    config = FinetuneConfig.from_dict(raw)
    if not optimizer_entry(config.optimizer).zeroth_order:
        raise ReplayError(
            f"optimizer {config.optimizer!r} takes gradients: only zeroth-order runs replay"
        )
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReplayError(f"--output {str(out)!r} exists and is not an empty directory")
    device = device or config.device or "cpu"
    check_device(device)
    start, train = _replay_records(run)
    step = _target_step(run, config, len(train), step)
    tuned, tokenizer, optimizer = _rebuild_start(config, device, start, run)
    bar = progress_bar(step, 0, "replay", enabled=progress)
    for record in train[:step]:
        apply_step(optimizer, record.losses, record.lr)
        bar.update(1)
    bar.close()
    tuned.export(out, tokenizer)
    return ReplayResult(out, step, step, tuned.wrapped, tokenizer)


def _replay_records(run: Any) -> tuple[StartRecord, list[TrainRecord]]:
    """The run's start record and its train records, checked to be complete."""
    records = run.read_log(cut_tail_ok=True)
    log = run / LOG
    starts = [r for r in records if isinstance(r, StartRecord)]
    if not starts or starts[0].replay_format != REPLAY_FORMAT:
        raise ReplayError(
            f"{log} has no start record of replay format {REPLAY_FORMAT}: the run was made by an "
            "adamezo without replay logs, and cannot be replayed"
        )
    train = [r for r in records if isinstance(r, TrainRecord)]
    for number, record in enumerate(train, 1):
        if record.step != number or record.losses is None:
            raise ReplayError(
                f"{log}: the train record of step {number} is missing or lacks losses and lr; "
                "the log is incomplete"
            )
    return starts[0], train


def _target_step(run: Any, config: Any, logged: int, step: int | None) -> int:
    from adamezo._checks import check_int

    if step is None:
        step = _final_step(run, config, logged)
    else:
        check_int("step", step, 0)
    if step > logged:
        raise ReplayError(
            f"{run / LOG} records {logged} steps; step {step} is not in it (the log is "
            "incomplete, or the run has not got that far)"
        )
    return step


def _rebuild_start(config: Any, device: str, start: StartRecord, run: Any):
    """The run's base model, tuned as the run tuned it, and its optimizer at step 0; checked
    against the start record's fingerprint and passes."""
    parts = build_run(replace(config, device=device, device_map=None))
    if fingerprint(parts.tuned) != start.base_sha256:
        raise ReplayError(
            f"the base weights of model {config.model!r} differ from those the run in "
            f"{str(run.path)!r} started from (their SHA-256 in {run / LOG}): replay needs the "
            "run's own base model, dtype and settings"
        )
    if list(parts.optimizer.passes) != list(start.passes):
        raise ReplayError(f"{run / LOG} was written for another optimizer's passes")
    return parts.tuned, parts.tokenizer, parts.optimizer


def _final_step(run: Any, config: Any, logged: int) -> int:
    """The step whose weights the run ends with: its best step when it keeps the best, else
    its last; the last logged step for a run that has not finished."""
    metrics = run.read_metrics()
    if metrics is None:
        return logged
    if config.keep_best and metrics.get("best_step") is not None:
        return int(metrics["best_step"])
    return int(metrics["steps"])
