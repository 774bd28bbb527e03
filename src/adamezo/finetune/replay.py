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
from adamezo.finetune.records import LOG, REPLAY_FORMAT, EndRecord, StartRecord, TrainRecord
from adamezo.finetune.rundir import MODEL, RunDirectory
from adamezo.finetune.verify import Verification
from adamezo.replay import ReplayError, apply_step


@dataclass
class ReplayResult:
    output: Path
    step: int
    """The step whose weights were rebuilt."""
    steps_replayed: int
    model: torch.nn.Module
    tokenizer: Any
    verification: Verification | None = None
    """What the checks found (:class:`~adamezo.finetune.verify.Verification`); None unverified."""


def replay_run(
    run_dir: str | Path,
    output: str | Path,
    *,
    step: int | None = None,
    device: str | None = None,
    progress: bool = False,
    verify: bool = True,
) -> ReplayResult:
    """Rebuild the weights of ``step`` of the run in ``run_dir`` (default: the weights the run
    ends with, its best step when it keeps the best) and write them to ``output`` as the run would
    have exported them. Raises :class:`ReplayError` for a log that cannot rebuild them (written
    without replay records, cut short, or from another base model).

    With ``verify`` (the default) it replays every logged step and checks each record and the
    weights against the end record and ``model/`` (:mod:`adamezo.finetune.verify`); the result's
    ``verification`` says whether they match and where they part. A log without an end record
    (written before adamezo logged the weights' hash, or by a run that did not finish) raises
    ReplayError unless ``verify=False``."""
    from adamezo.finetune.config import FinetuneConfig
    from adamezo.finetune.models import check_device
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
    start, train, end = _replay_records(run)
    final = _final_step(run, config, len(train))
    check = Verification(_check_complete(run, end, len(train))) if verify else None
    step = _target_step(run, len(train), final if step is None else step)
    tuned, tokenizer, optimizer = _rebuild_start(config, device, start, run)
    weights = _replay_steps(run, train, step, tuned, optimizer, check, progress)
    if weights is not None:  # verifying went on past the target step
        tuned.load_trainable_state(weights)
    tuned.export(out, tokenizer)
    if check is not None and step == final and (run / MODEL).is_dir():
        check.check_exported(out, run / MODEL, step)
    return ReplayResult(out, step, step, tuned.wrapped, tokenizer, check)


def _replay_steps(run, train, step, tuned, optimizer, check, progress):
    """Apply the records up to ``step`` (all of them when checking, ``check``); the weights of
    ``step`` when the replay went past it, else None."""
    last = len(train) if check is not None else step
    weights = tuned.trainable_state() if step < last else None
    if check is not None:
        check.check_weights(0, tuned)
    bar = progress_bar(last, 0, "replay", enabled=progress)
    for record in train[:last]:
        try:
            loss = apply_step(optimizer, record.losses, record.lr)
        except ReplayError as error:
            raise ReplayError(f"{run / LOG}: step {record.step}: {error}") from error
        if check is not None:
            check.check_step(record, loss, optimizer)
            check.check_weights(record.step, tuned)
        if record.step == step and step < last:
            weights = tuned.trainable_state()
        bar.update(1)
    bar.close()
    return weights


def _replay_records(run: Any) -> tuple[StartRecord, list[TrainRecord], EndRecord | None]:
    """The run's start record, its train records, checked to be complete and in order, and its
    end record (None in a log without one)."""
    records = run.read_log(
        cut_tail_ok=True,
        advice="the log is damaged and cannot rebuild the weights; restore it from a copy",
    )
    log = run / LOG
    starts = [r for r in records if isinstance(r, StartRecord)]
    if not starts or starts[0].replay_format != REPLAY_FORMAT:
        raise ReplayError(
            f"{log} has no start record of replay format {REPLAY_FORMAT}: the run was made by an "
            "adamezo without replay logs, and cannot be replayed"
        )
    train = [r for r in records if isinstance(r, TrainRecord)]
    for number, record in enumerate(train, 1):
        if record.step != number:
            raise ReplayError(
                f"{log}: step {number} is missing or out of place (step {record.step} stands "
                "where it should be): the log is damaged"
            )
        if record.losses is None:
            raise ReplayError(f"{log}: step {number} lacks losses and lr; the log is incomplete")
    ends = [i for i, r in enumerate(records) if isinstance(r, EndRecord)]
    if ends and ends != [len(records) - 1]:
        raise ReplayError(f"{log}: the end record is not the log's last line: the log is damaged")
    return starts[0], train, records[ends[0]] if ends else None


def _check_complete(run: Any, end: EndRecord | None, logged: int) -> EndRecord:
    """The end record of a log that holds every step the run took; else ReplayError."""
    metrics = run.read_metrics()
    took = end.step if end is not None else (metrics or {}).get("steps")
    if isinstance(took, int) and took > logged:
        where = "its end record" if end is not None else "metrics.json"
        raise ReplayError(
            f"{run / LOG}: the log ends after step {logged}, but the run took {took} steps "
            f"({where}): step {logged + 1} and later are missing; the log is cut short"
        )
    if end is None:
        raise ReplayError(
            f"{run / LOG} has no end record (the SHA-256 of the run's weights): it was written "
            "before adamezo logged it, or the run has not finished; nothing to check the "
            "rebuilt weights against: replay it unchecked with --no-verify"
        )
    if end.step != logged:
        raise ReplayError(f"{run / LOG}: the end record is at step {end.step}, the log at {logged}")
    return end


def _target_step(run: Any, logged: int, step: int) -> int:
    from adamezo._checks import check_int

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
