"""The format of ``log.jsonl``: one typed record per line (start, train, eval), to and from JSON.

Every writer and reader of a run's log goes through this module. A zeroth-order run's log starts
with a :class:`StartRecord` (the base weights' SHA-256, what ``adamezo replay`` checks), then one
:class:`TrainRecord` per step and an :class:`EvalRecord` per dev evaluation (step 0 is the
zero-shot one), and ends, once the run has finished, with an :class:`EndRecord` (the SHA-256 of
the final and best weights, what replay checks its result against). Replay rebuilds the weights
from the train records' ``losses`` and ``lr``, so the float values are written in full precision;
NaN and ±inf become ``null`` (strict JSON).

Logs written by every earlier adamezo read back: keys added later (``losses``, ``step_seconds``,
``step_cpu_seconds``, the start record's ``machine``) are optional, and keys this version does not
know are kept in ``extra``.
To add a field, give the record an optional attribute and write it in ``to_json`` only when set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adamezo.finetune.files import RunFileError, json_line

LOG = "log.jsonl"

REPLAY_FORMAT = 1
"""The version of what a start record and the train records promise to ``adamezo replay``."""

TIMING_KEYS = ("time", "step_seconds", "step_cpu_seconds")
"""Keys that measure time: they differ between runs that are otherwise bitwise identical (a
resumed run and an uninterrupted one, two processes)."""


@dataclass
class StartRecord:
    """The first record of a zeroth-order run: what a replay needs besides the train records."""

    base_sha256: str
    """SHA-256 of the weights the run started from (:func:`adamezo.finetune.replay.fingerprint`)."""
    passes: list[float]
    """The optimizer's passes (the perturbation signs of one step)."""
    replay_format: int = REPLAY_FORMAT
    step: int = 0
    machine: dict[str, Any] | None = None
    """What the run's floating-point results depend on (:mod:`adamezo.finetune.machine`)."""
    extra: dict[str, Any] = field(default_factory=dict)

    type = "start"

    def to_json(self) -> dict[str, Any]:
        out = {
            "type": self.type,
            "step": self.step,
            "replay_format": self.replay_format,
            "base_sha256": self.base_sha256,
            "passes": list(self.passes),
        }
        if self.machine is not None:
            out["machine"] = dict(self.machine)
        return {**out, **self.extra}


@dataclass
class TrainRecord:
    """One optimizer step. The zeroth-order fields (``skipped_steps`` is their marker) are
    absent for first-order Adam; ``loss`` is None where it was not finite."""

    step: int
    epoch: float
    loss: float | None
    lr: float
    forward_passes: int
    time: float
    """Seconds since training started (a resumed run's clock goes on from its checkpoint)."""
    projected_grad: float | None = None
    update_norm: float | None = None
    skipped_steps: int | None = None
    losses: list[float | None] | None = None
    """Every pass's loss in full precision: with the lr they determine the update."""
    step_seconds: float | None = None
    """This step alone (batch, closure passes, update), wall-clock."""
    step_cpu_seconds: float | None = None
    """The same in the process's CPU time, which other jobs on a loaded machine do not inflate."""
    extra: dict[str, Any] = field(default_factory=dict)

    type = "train"

    @property
    def zeroth_order(self) -> bool:
        return self.skipped_steps is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "step": self.step,
            "epoch": self.epoch,
            "loss": self.loss,
            "lr": self.lr,
        }
        if self.zeroth_order:
            out["projected_grad"] = self.projected_grad
            out["update_norm"] = self.update_norm
            out["skipped_steps"] = self.skipped_steps
        out["forward_passes"] = self.forward_passes
        if self.losses is not None:
            out["losses"] = list(self.losses)
        out["time"] = self.time
        for key in ("step_seconds", "step_cpu_seconds"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {**out, **self.extra}


@dataclass
class EvalRecord:
    """One dev evaluation: ``scores`` are the split's numbers (``dev_loss``, ``dev_accuracy``,
    ..., ``dev_forward_calls``). Evaluations after a step carry the early-stopping state
    (``evals_without_improvement`` marks them); the zero-shot one at step 0 does not."""

    step: int
    scores: dict[str, Any]
    time: float
    best_step: int | None = None
    evals_without_improvement: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    type = "eval"

    @property
    def dev_loss(self) -> float | None:
        return self.scores.get("dev_loss")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "step": self.step, **self.scores}
        if self.evals_without_improvement is not None:
            out["best_step"] = self.best_step
            out["evals_without_improvement"] = self.evals_without_improvement
        out["time"] = self.time
        return {**out, **self.extra}


@dataclass
class EndRecord:
    """The last record of a finished zeroth-order run: SHA-256 of its trainable weights after the
    last step and, with keep-best, of the best step's (the weights ``model/`` holds); what
    ``adamezo replay`` checks the weights it rebuilds against."""

    step: int
    weights_sha256: str
    """:func:`adamezo.finetune.builder.trainable_sha256` of the weights after ``step``."""
    best_step: int | None = None
    best_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    type = "end"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "step": self.step,
            "weights_sha256": self.weights_sha256,
        }
        if self.best_sha256 is not None:
            out["best_step"] = self.best_step
            out["best_sha256"] = self.best_sha256
        return {**out, **self.extra}


Record = StartRecord | TrainRecord | EvalRecord | EndRecord

_TYPES: dict[str, type] = {
    "start": StartRecord,
    "train": TrainRecord,
    "eval": EvalRecord,
    "end": EndRecord,
}
_REQUIRED = {
    "start": ("replay_format", "base_sha256", "passes"),
    "end": ("weights_sha256",),
    "train": ("step", "epoch", "loss", "lr", "forward_passes", "time"),
    "eval": ("step", "time"),
}
_EVAL_KEYS = ("type", "step", "best_step", "evals_without_improvement", "time")


def from_json(data: Any) -> Record:
    """The record a parsed line holds; ValueError for anything that is not one."""
    if not isinstance(data, dict) or "type" not in data or "step" not in data:
        raise ValueError("not a log record (an object with 'type' and 'step')")
    kind = data["type"]
    if kind not in _TYPES:
        raise ValueError(f"unknown record type {kind!r} (known: {', '.join(_TYPES)})")
    missing = [key for key in _REQUIRED[kind] if key not in data]
    if missing:
        raise ValueError(f"a {kind} record without {', '.join(missing)}")
    if kind == "eval":
        scores = {k: v for k, v in data.items() if k not in _EVAL_KEYS}
        return EvalRecord(
            step=data["step"],
            scores=scores,
            time=data["time"],
            best_step=data.get("best_step"),
            evals_without_improvement=data.get("evals_without_improvement"),
        )
    cls = _TYPES[kind]
    known = set(cls.__dataclass_fields__) - {"extra"}
    values = {k: v for k, v in data.items() if k in known}
    extra = {k: v for k, v in data.items() if k not in known and k != "type"}
    return cls(**values, extra=extra)


def notify(callbacks: Iterable[Callable[[dict[str, Any]], Any]], records: list[Record]) -> None:
    """Hand each record, as the JSON object log.jsonl holds, to every callback."""
    for record in records:
        for callback in callbacks:
            callback(record.to_json())


def to_line(record: Record) -> str:
    """The record as one line of strict JSON, with its newline."""
    return json_line(record.to_json())


DAMAGED = "the log is damaged; restore it or start the run over with --overwrite"
"""What to do about a damaged line, said to ``adamezo finetune``'s user (a reader for another
command passes its own advice)."""


def read_log(path: Path, *, cut_tail_ok: bool = False, advice: str = DAMAGED) -> list[Record]:
    """The log's records (none when there is no file); RunFileError naming the file and line of a
    damaged record, with ``advice``.

    A last line without its newline is what a crash (or a full disk) leaves while a record is
    written: with ``cut_tail_ok`` it is dropped (resuming drops it anyway), else an error.
    """
    return [record for _line, record in _parse(path, cut_tail_ok, advice)]


def read_lines(path: Path, *, cut_tail_ok: bool = False) -> list[tuple[str, Record]]:
    """Each record with its line as written (newline included), to keep lines byte for byte."""
    return list(_parse(path, cut_tail_ok, DAMAGED))


def _parse(path: Path, cut_tail_ok: bool, damaged: str) -> Iterator[tuple[str, Record]]:
    import json

    if not path.is_file():
        return
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise RunFileError(f"{path} is not UTF-8 text ({error}); the log is damaged") from error
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: the write did not finish
        try:
            record = from_json(json.loads(line))
        except ValueError as error:
            if last and cut_tail_ok:
                return
            advice = (
                "the run stopped while writing it; resume with --resume, which drops it"
                if last and damaged == DAMAGED
                else damaged
            )
            raise RunFileError(f"{path}:{number}: bad record ({error}); {advice}") from error
        yield line + "\n", record
