"""Which training examples each step sees: a pure function of (seed, step), shardable by rank.

Each epoch is a fresh seeded permutation cut into global batches (the remainder that does not
fill a batch is dropped for that epoch). Because step t's batch depends on nothing but the seed
and t, resuming needs only the step count, and data-parallel processes agree on every global
batch without talking (each then takes its part with :func:`adamezo.distributed.shard_batch`).
"""

from __future__ import annotations

import torch

from adamezo._checks import check_int
from adamezo.noise import MASK64


class BatchOrder:
    """Global batches of ``batch_size`` indices into ``num_examples`` training examples."""

    def __init__(self, num_examples: int, batch_size: int, seed: int) -> None:
        self.num_examples = check_int("num_examples", num_examples, 1)
        self.batch_size = check_int("batch_size", batch_size, 1, self.num_examples)
        self.seed = check_int("seed", seed, 0, MASK64)
        self.batches_per_epoch = self.num_examples // self.batch_size
        self._epoch: int | None = None
        self._permutation: list[int] = []

    def permutation(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) & MASK64)
            self._permutation = torch.randperm(self.num_examples, generator=generator).tolist()
            self._epoch = epoch
        return self._permutation

    def global_batch(self, step: int) -> list[int]:
        """The indices every rank together processes at ``step`` (0-based)."""
        epoch, position = divmod(step, self.batches_per_epoch)
        start = position * self.batch_size
        return self.permutation(epoch)[start : start + self.batch_size]

    def epoch_of(self, step: int) -> float:
        return step / self.batches_per_epoch
