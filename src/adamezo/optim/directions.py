"""Direction families: what d_j of a step is, element by element or as low-rank factors.

A direction is never stored: it is a pure function of (seed, step, query, tensor), regenerated
whenever a pass or an update needs it. Three families:

- :class:`ElementwiseDirections` with Gaussian noise (MeZO and the methods built on it) or
  Rademacher signs (FZOO), through a :class:`~adamezo.kernels.Kernel`, and
  :class:`PreconditionedDirections`, Gaussian noise divided by √H (HiZOO);
- :class:`LowRankDirections`: each matrix moves along A·Bᵀ with small factors (LOZO's U Vᵀ), the
  other tensors (biases, norms) along an element-wise family.

The optimizer hands each family ``seed_of(step, query)``, the 64-bit seed of a query's direction.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import torch

from adamezo.kernels import FusedUpdate, Kernel
from adamezo.kernels.lowrank import Factors, add_lowrank, is_matrix, lowrank_copy
from adamezo.noise import stream_base
from adamezo.optim.context import TensorSlot

SeedOf = Callable[[int, int], int]
"""(step, query) -> the seed of that query's direction."""


class Directions(abc.ABC):
    """How θ moves along the direction of query j of a step, in place or into a copy."""

    def __init__(self, seed_of: SeedOf) -> None:
        self.seed_of = seed_of

    @abc.abstractmethod
    def shift(
        self, slot: TensorSlot, tensor: torch.Tensor, step: int, query: int, scale: float
    ) -> None:
        """``tensor`` (slot's storage or a copy of it) ← round(tensor + scale·d), in place."""

    def perturbed(self, slot: TensorSlot, step: int, query: int, scale: float) -> torch.Tensor:
        """round(θ + scale·d) as a new tensor, θ untouched (bitwise what ``shift`` leaves)."""
        copy = slot.tensor.detach().clone()
        self.shift(slot, copy, step, query, scale)
        return copy


class ElementwiseDirections(Directions):
    """Directions drawn element by element from a counter-based stream (Gaussian or
    Rademacher), by the kernel ``kernel_for(tensor)`` picks."""

    def __init__(self, seed_of: SeedOf, kernel_for: Callable[[torch.Tensor], Kernel]) -> None:
        super().__init__(seed_of)
        self.kernel_for = kernel_for

    def base(self, slot: TensorSlot, step: int, query: int) -> int:
        return stream_base(self.seed_of(step, query), slot.key)

    def shift(
        self, slot: TensorSlot, tensor: torch.Tensor, step: int, query: int, scale: float
    ) -> None:
        base = self.base(slot, step, query)
        self.kernel_for(tensor).add_noise(tensor, base, scale, slot.offset)

    def perturbed(self, slot: TensorSlot, step: int, query: int, scale: float) -> torch.Tensor:
        base = self.base(slot, step, query)
        return self.kernel_for(slot.tensor).perturbed_copy(slot.tensor, base, scale, slot.offset)

    def fused_update(
        self, slot: TensorSlot, streams: Sequence[tuple[int, int]], update: FusedUpdate
    ) -> float:
        """The kernel's fused restore-and-update over the directions of ``streams`` ((step,
        query) pairs, the one θ was left on first); returns Σ(Δθ)²."""
        bases = [self.base(slot, step, query) for step, query in streams]
        return self.kernel_for(slot.tensor).fused_update(slot.tensor, bases, update, slot.offset)


class PreconditionedDirections(ElementwiseDirections):
    """Gaussian z divided element by element by √H, H a state buffer of the tensor's shape that
    ``hessian_of(slot)`` returns (HiZOO's H^{−1/2} ⊙ z), through the kernels' preconditioned
    noise pass."""

    def __init__(
        self,
        seed_of: SeedOf,
        kernel_for: Callable[[torch.Tensor], Kernel],
        hessian_of: Callable[[TensorSlot], torch.Tensor],
    ) -> None:
        super().__init__(seed_of, kernel_for)
        self.hessian_of = hessian_of

    def shift(
        self, slot: TensorSlot, tensor: torch.Tensor, step: int, query: int, scale: float
    ) -> None:
        base = self.base(slot, step, query)
        kernel = self.kernel_for(tensor)
        kernel.add_preconditioned_noise(tensor, self.hessian_of(slot), base, scale, slot.offset)

    def perturbed(self, slot: TensorSlot, step: int, query: int, scale: float) -> torch.Tensor:
        base = self.base(slot, step, query)
        out = torch.empty_like(slot.tensor, memory_format=torch.contiguous_format)
        return self.kernel_for(slot.tensor).add_preconditioned_noise(
            slot.tensor, self.hessian_of(slot), base, scale, slot.offset, out=out
        )


FactorsOf = Callable[[TensorSlot, int, int], Factors]
"""(slot, step, query) -> (A, B) of that matrix's direction A·Bᵀ, in the compute dtype."""


class LowRankDirections(Directions):
    """Matrices (tensors of two or more dimensions, viewed as shape[0] × the rest) move along
    A·Bᵀ, with the factors ``factors_of`` gives; other tensors along ``vectors``."""

    def __init__(
        self,
        seed_of: SeedOf,
        factors_of: FactorsOf,
        vectors: ElementwiseDirections,
        chunk_size: int,
    ) -> None:
        super().__init__(seed_of)
        self.factors_of = factors_of
        self.vectors = vectors
        self.chunk_size = chunk_size

    def shift(
        self, slot: TensorSlot, tensor: torch.Tensor, step: int, query: int, scale: float
    ) -> None:
        if not is_matrix(slot.tensor):
            self.vectors.shift(slot, tensor, step, query, scale)
            return
        add_lowrank(tensor, self.factors_of(slot, step, query), scale, self.chunk_size)

    def perturbed(self, slot: TensorSlot, step: int, query: int, scale: float) -> torch.Tensor:
        if not is_matrix(slot.tensor):
            return self.vectors.perturbed(slot, step, query, scale)
        factors = self.factors_of(slot, step, query)
        return lowrank_copy(slot.tensor, factors, scale, self.chunk_size)


def check_whole(slots: Sequence[TensorSlot], method: str) -> None:
    """Raise ValueError if a matrix is sharded across processes: a low-rank direction's factors
    span the whole matrix (FSDP-sharded parameters are not supported by ``method``)."""
    for slot in slots:
        if is_matrix(slot.tensor) and (slot.shards > 1 or slot.offset):
            raise ValueError(
                f"{method} perturbs each weight matrix along a low-rank direction of the whole "
                "matrix; sharded (FSDP) parameters are not supported, train with one copy of "
                "the weights per process (data parallel)"
            )
