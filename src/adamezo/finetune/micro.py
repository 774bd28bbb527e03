"""Micro-batching: one step over a batch larger than memory, in pieces of a given size.

The zeroth-order closure evaluates the loss of the whole batch as the size-weighted mean of its
micro-batches' mean losses, so both passes of a step see every example and the step equals the
one-batch step up to float rounding. First-order steps backpropagate each piece, scaled alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def pieces(batch: Sequence[Any], size: int | None) -> list[Sequence[Any]]:
    """``batch`` cut into consecutive pieces of ``size`` (the last may be shorter)."""
    if size is None or size >= len(batch):
        return [batch]
    return [batch[i : i + size] for i in range(0, len(batch), size)]


def batch_loss(
    loss: Callable[[Sequence[Any]], torch.Tensor], batch: Sequence[Any], size: int | None
) -> torch.Tensor:
    """The mean loss of ``batch``, computed ``size`` examples at a time."""
    parts = pieces(batch, size)
    if len(parts) == 1:
        return loss(batch)
    return sum(loss(part) * (len(part) / len(batch)) for part in parts)  # type: ignore[return-value]


def backward_in_pieces(
    loss: Callable[[Sequence[Any]], torch.Tensor], batch: Sequence[Any], size: int | None
) -> float:
    """Backpropagate the mean loss of ``batch`` one piece at a time; return that mean loss."""
    total = 0.0
    for part in pieces(batch, size):
        value = loss(part) * (len(part) / len(batch))
        value.backward()
        total += float(value.detach())
    return total
