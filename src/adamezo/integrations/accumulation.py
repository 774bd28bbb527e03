"""Gradient accumulation for ``ZOTrainer``: the accumulated micro-batches form one batch.

The Trainer hands ``training_step`` one micro-batch at a time and steps the optimizer after the
last of ``gradient_accumulation_steps``. A zeroth-order step must evaluate the same batch in both
of its passes, so ``ZOTrainer`` keeps the micro-batches until the last one arrives and then takes
one step whose closure is the loss of all of them together (as
``adamezo.finetune.micro`` does for the fine-tuning loop): the sum of their losses where the
Trainer normalises each by the whole batch's token count (``num_items_in_batch``), else their
mean weighted by rows. This is the step of one batch of the accumulated size, up to float
rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def rows(inputs: Any) -> int:
    """The number of examples in a micro-batch (the first dimension of its first tensor)."""
    values = inputs.values() if isinstance(inputs, dict) else inputs
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return 1


def accumulated_loss(
    loss: Callable[[Any], torch.Tensor], micro_batches: Sequence[Any], normalised: bool
) -> torch.Tensor:
    """The loss of ``micro_batches`` taken as one batch: the sum of their losses when each is
    ``normalised`` by the whole batch's size already, else their row-weighted mean."""
    if len(micro_batches) == 1:
        return loss(micro_batches[0])
    if normalised:
        return sum(loss(inputs) for inputs in micro_batches)  # type: ignore[return-value]
    total = sum(rows(inputs) for inputs in micro_batches)
    return sum(  # type: ignore[return-value]
        loss(inputs) * (rows(inputs) / total) for inputs in micro_batches
    )
