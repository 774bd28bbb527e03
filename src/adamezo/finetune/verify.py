"""What ``adamezo replay`` checks: each train record against the step it rebuilt, and the rebuilt
weights against the SHA-256 in the log's end record and the run's ``model/``.

A train record must be the step the optimizer took from its ``losses`` and ``lr``: its ``loss``
the mean the optimizer takes of the passes (rounded to the closure's dtype, which the log does
not hold: any float dtype that holds every pass's loss exactly), and its ``projected_grad``,
``update_norm``, ``skipped_steps`` and ``forward_passes`` those the replayed step reports, bit for
bit. ``update_norm`` depends on the weights, so a changed ``lr`` or loss shows at its own step.
The end record's hashes and ``model/`` witness the weights at the final and best steps: a
mismatch there with every record consistent puts the parting between the last step a witness
confirmed and the step where it failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adamezo.finetune.builder import trainable_sha256
from adamezo.finetune.records import EndRecord, TrainRecord

# The dtypes a closure's loss may have: the logged loss is the optimizer's mean rounded to one.
LOSS_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
STEP_FIGURES = ("projected_grad", "update_norm", "skipped_steps", "forward_passes")


@dataclass
class Verification:
    """The outcome: ``matches`` the run or not; where not, ``first_step``, the earliest step at
    which the log and the run's weights can part, and ``problem``, what differs."""

    end: EndRecord
    matches: bool = True
    first_step: int | None = None
    problem: str | None = None
    checked: list[str] = field(default_factory=list)
    """What was compared and agreed, for the report."""
    confirmed: int = 0
    """The last step whose weights a witness (base fingerprint, end-record hash) confirmed."""

    def fail(self, first_step: int, problem: str) -> None:
        if self.matches:  # the first problem is the one to report
            self.matches, self.first_step, self.problem = False, first_step, problem

    def check_step(self, record: TrainRecord, loss: float | None, optimizer: Any) -> None:
        """Compare ``record`` with the step just replayed from it (``loss``: what
        :func:`adamezo.replay.apply_step` returned)."""
        if not _is_mean(record.loss, record.losses or (), loss):
            self.fail(
                record.step,
                f"step {record.step}: its loss {record.loss!r} is not the mean of its losses "
                f"{record.losses} as the optimizer takes it ({loss!r})",
            )
            return
        figures = optimizer.metrics()
        for key in STEP_FIGURES:
            if not _same(getattr(record, key), figures[key]):
                self.fail(
                    record.step,
                    f"step {record.step}: its {key} {getattr(record, key)!r} is not the replayed "
                    f"step's {figures[key]!r} (the step's losses or lr were changed, or the "
                    "weights before it differ)",
                )
                return

    def check_weights(self, step: int, tuned: Any) -> None:
        """Compare the weights after ``step`` with the end record's SHA-256 of them, if any."""
        end = self.end
        expected = {end.step: end.weights_sha256}
        if end.best_sha256 is not None and end.best_step is not None:
            expected.setdefault(end.best_step, end.best_sha256)
        if step not in expected:
            return
        if trainable_sha256(tuned) == expected[step]:
            self.checked.append(f"the SHA-256 of step {step}'s weights")
            self.confirmed = max(self.confirmed, step)
        else:
            first = self.confirmed + 1
            self.fail(
                first,
                f"the weights rebuilt after step {step} differ from those the run logged (their "
                f"SHA-256 in the end record), though every record is consistent: the log and the "
                f"run's weights part in steps {first} to {step}",
            )

    def check_exported(self, rebuilt: Path, model_dir: Path, step: int) -> None:
        """Compare every weights file replay wrote with the one of the run's ``model/``."""
        from safetensors.torch import load_file

        for file in sorted(rebuilt.glob("*.safetensors")):
            theirs = model_dir / file.name
            if not theirs.is_file():
                self.fail(step, f"the run's {model_dir.name}/ has no {file.name} to compare with")
                return
            ours, saved = load_file(str(file)), load_file(str(theirs))
            for name in sorted(set(ours) | set(saved)):
                a, b = ours.get(name), saved.get(name)
                if a is None or b is None or a.dtype != b.dtype or not torch.equal(a, b):
                    self.fail(
                        step,
                        f"tensor {name} of the run's {model_dir.name}/{file.name} differs from "
                        f"the one rebuilt for step {step}",
                    )
                    return
        self.checked.append(f"the run's {model_dir.name}/")


def _is_mean(logged: float | None, losses: Sequence[float | None], mean: float | None) -> bool:
    if mean is None or not math.isfinite(mean):
        return logged is None
    if logged is None:
        return False
    finite = [v for v in losses if v is not None]
    return any(
        all(float(torch.tensor(v, dtype=dtype)) == v for v in finite)
        and float(torch.tensor(mean, dtype=dtype)) == logged
        for dtype in LOSS_DTYPES
    )


def _same(logged: Any, value: Any) -> bool:
    """Equal to the bit; a null in the log stands for None or a non-finite float."""
    if logged is None:
        return value is None or (isinstance(value, float) and not math.isfinite(value))
    return value is not None and logged == value
