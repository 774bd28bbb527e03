"""Rebuild a zeroth-order run's weights from its log: a few numbers per step.

A zeroth-order step is a pure function of the step counter (which seeds the direction z_t), the
closure's values at the perturbed points, the lr and the optimizer's own state, and that state is
in turn a function of the earlier steps. So the values each step's closure returned (in full
precision, as :attr:`ZerothOrderOptimizer.last_losses` gives them) and the lr of each step rebuild
the weights bit for bit, on the same dtype, device and kernel, with no forward pass::

    record = step_record(optimizer)            # after each optimizer.step(closure): log it
    ...
    fresh = AdaMeZO(base_model.parameters(), lr=..., seed=...)   # same settings
    replay(fresh, records)                      # base_model now holds the trained weights

Replaying applies each step exactly as it ran: the perturbation moves, the restore fused with the
update, a skipped step (a non-finite loss) skipped again; ZO-Adam's moments and HiZOO's Hessian
estimate are rebuilt on the way (HiZOO's needs the loss at θ, its first pass, which is logged).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from adamezo.optim.base import NonFiniteLossError, ZerothOrderOptimizer


class ReplayError(ValueError):
    """A log cannot rebuild the weights: a record misses what replay needs, or it does not fit
    the optimizer."""


def step_record(optimizer: ZerothOrderOptimizer) -> dict[str, Any]:
    """What replay needs of the step just taken: every pass's loss and every group's lr.

    Call it after ``optimizer.step`` and before a scheduler changes the lr. Non-finite losses (a
    skipped step) are kept as floats here; a JSON log stores them as null, which replay reads as
    NaN.
    """
    if optimizer.last_losses is None:
        raise ReplayError("step_record: the optimizer has not taken a step yet")
    return {
        "losses": list(optimizer.last_losses),
        "lr": [group["lr"] for group in optimizer.param_groups],
    }


def apply_step(
    optimizer: ZerothOrderOptimizer,
    losses: Sequence[float | None],
    lr: float | Sequence[float] | None = None,
) -> float | None:
    """Take the optimizer's next step with the closure values ``losses`` (one per pass, None for a
    non-finite one) instead of evaluating a closure; ``lr`` (one, or one per group) first.

    Returns the step's loss as the optimizer takes it from the passes (what ``step`` returns, in
    float64: the logged loss is this rounded to the closure's dtype); None where the optimizer
    raises on a non-finite loss."""
    if not isinstance(optimizer, ZerothOrderOptimizer):
        raise TypeError(f"optimizer must be a ZerothOrderOptimizer, got {type(optimizer).__name__}")
    if isinstance(losses, (str, bytes)) or not isinstance(losses, Sequence):
        raise ReplayError(f"losses must be a list of numbers, got {type(losses).__name__}")
    if len(losses) != len(optimizer.passes):
        raise ReplayError(
            f"{type(optimizer).__name__} evaluates the loss {len(optimizer.passes)} times a step; "
            f"the record holds {len(losses)} losses"
        )
    values = []
    for value in losses:
        if value is None:
            values.append(math.nan)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values.append(float(value))
        else:
            raise ReplayError(f"losses must be numbers or null, got {value!r}")
    if lr is not None:
        rates = [lr] * len(optimizer.param_groups) if isinstance(lr, (int, float)) else list(lr)
        if len(rates) != len(optimizer.param_groups):
            raise ReplayError(
                f"the record holds {len(rates)} lrs, the optimizer has "
                f"{len(optimizer.param_groups)} param groups"
            )
        for group, rate in zip(optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
    passes = iter(values)

    def closure() -> torch.Tensor:
        # float64 holds a Python float exactly, so the step sees the logged value to the bit.
        return torch.tensor(next(passes), dtype=torch.float64)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a skipped step warned when it ran
        # nonfinite="raise": the run stopped or went on without this update; so does replay.
        with contextlib.suppress(NonFiniteLossError):
            return float(optimizer.step(closure))
    return None


def replay(
    optimizer: ZerothOrderOptimizer, records: Iterable[Mapping[str, Any]]
) -> ZerothOrderOptimizer:
    """Apply the logged steps ``records`` (each with ``losses`` and optionally ``lr``, as
    :func:`step_record` gives them) to a freshly built optimizer over the base weights; returns
    the optimizer, its parameters now holding the weights of the last record's step."""
    for index, record in enumerate(records):
        if "losses" not in record:
            raise ReplayError(f"record {index} has no 'losses': the log was not written for replay")
        apply_step(optimizer, record["losses"], record.get("lr"))
    return optimizer
