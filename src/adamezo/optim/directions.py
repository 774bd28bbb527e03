"""Direction families: what d_j of a step is, element by element or as low-rank factors.

A direction is never stored: it is a pure function of (seed, step, query, tensor), regenerated
whenever a pass or an update needs it. Three families:

- :class:`ElementwiseDirections` with Gaussian noise (MeZO and the methods built on it) or
  Rademacher signs (FZOO), through a :class:`~adamezo.kernels.Kernel`, and
  :class:`PreconditionedDirections`, Gaussian noise divided by √H (HiZOO);
- :class:`LowRankDirections`: each matrix moves along A·Bᵀ with small factors (LOZO's U Vᵀ), the
  other tensors (biases, norms) along an element-wise family.

The optimizer hands an element-wise family ``seed_of(step, query)``, the 64-bit seed of a query's
direction; a low-rank family gets its factors from ``factors_of``, which draws them from those seeds
itself (and its other tensors move along an element-wise family).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import torch

from adamezo.kernels import FusedUpdate, Kernel
from adamezo.kernels.lowrank import (
    Factors,
    ProductPasses,
    add_lowrank,
    is_matrix,
    lowrank_copy,
    lowrank_update,
    passes_for,
)
from adamezo.noise import stream_base
from adamezo.optim.context import TensorSlot

SeedOf = Callable[[int, int], int]
"""(step, query) -> the seed of that query's direction."""


class Directions(abc.ABC):
    """How θ moves along the direction of query j of a step, in place or into a copy."""

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

    def switch(self, slot: TensorSlot, step: int, scale: float, old: int, new: int) -> None:
        """Move slot's storage from θ + scale·d_old to θ + scale·d_new in place (rounded: the
        in-place perturbation's query-to-query move); here back along d_old, then along d_new."""
        self.shift(slot, slot.tensor, step, old, -scale)
        self.shift(slot, slot.tensor, step, new, scale)


class ElementwiseDirections(Directions):
    """Directions drawn element by element from a counter-based stream (Gaussian or
    Rademacher), by the kernel ``kernel_for(tensor)`` picks."""

    def __init__(self, seed_of: SeedOf, kernel_for: Callable[[torch.Tensor], Kernel]) -> None:
        self.seed_of = seed_of
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

    def switch(self, slot: TensorSlot, step: int, scale: float, old: int, new: int) -> None:
        bases = self.base(slot, step, old), self.base(slot, step, new)
        self.kernel_for(slot.tensor).switch_noise(slot.tensor, *bases, scale, slot.offset)

    def fused_update_deferred(
        self, slot: TensorSlot, streams: Sequence[tuple[int, int]], update: FusedUpdate
    ) -> float | torch.Tensor:
        """The kernel's fused restore-and-update over the directions of ``streams`` ((step,
        query) pairs, the one θ was left on first); returns Σ(Δθ)², possibly as a 0-dim tensor
        on the tensor's device, for a :class:`~adamezo.kernels.DeferredSum` to read once."""
        bases = [self.base(slot, step, query) for step, query in streams]
        kernel = self.kernel_for(slot.tensor)
        return kernel.fused_update_deferred(slot.tensor, bases, update, slot.offset)


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

    def switch(self, slot: TensorSlot, step: int, scale: float, old: int, new: int) -> None:
        # No one-pass move for preconditioned noise: back along d_old, then out along d_new.
        Directions.switch(self, slot, step, scale, old, new)

    def perturbed(self, slot: TensorSlot, step: int, query: int, scale: float) -> torch.Tensor:
        base = self.base(slot, step, query)
        out = torch.empty_like(slot.tensor, memory_format=torch.contiguous_format)
        return self.kernel_for(slot.tensor).add_preconditioned_noise(
            slot.tensor, self.hessian_of(slot), base, scale, slot.offset, out=out
        )


FactorsOf = Callable[[TensorSlot, int, int], Factors]
"""(slot, step, query) -> (A, B) of that matrix's direction A·Bᵀ, in the compute dtype."""

SwitchOf = Callable[[TensorSlot, int, int, int], Factors | None]
"""(slot, step, old, new) -> (A, B) with A·Bᵀ = d_new − d_old, for families whose queries share A
(ZO-Muon's P): a query-to-query move is then one product instead of two; None: no such factors
(back along d_old, then along d_new)."""


class LowRankDirections(Directions):
    """Matrices (tensors of two or more dimensions, viewed as shape[0] × the rest) move along
    A·Bᵀ, with the factors ``factors_of`` gives; other tensors along ``vectors``."""

    def __init__(
        self,
        factors_of: FactorsOf,
        vectors: ElementwiseDirections,
        chunk_size: int,
        switch_of: SwitchOf | None = None,
    ) -> None:
        self.factors_of = factors_of
        self.vectors = vectors
        self.chunk_size = chunk_size
        self.switch_of = switch_of

    def passes(self, slot: TensorSlot) -> ProductPasses:
        """The element-wise sweeps after each block's product: compiled where the kernel the
        slot's tensor gets has them, else plain torch."""
        return passes_for(self.vectors.kernel_for(slot.tensor))

    def shift(
        self, slot: TensorSlot, tensor: torch.Tensor, step: int, query: int, scale: float
    ) -> None:
        if not is_matrix(slot.tensor):
            self.vectors.shift(slot, tensor, step, query, scale)
            return
        factors = self.factors_of(slot, step, query)
        add_lowrank(tensor, factors, scale, self.chunk_size, self.passes(slot))

    def perturbed(self, slot: TensorSlot, step: int, query: int, scale: float) -> torch.Tensor:
        if not is_matrix(slot.tensor):
            return self.vectors.perturbed(slot, step, query, scale)
        factors = self.factors_of(slot, step, query)
        return lowrank_copy(slot.tensor, factors, scale, self.chunk_size, self.passes(slot))

    def switch(self, slot: TensorSlot, step: int, scale: float, old: int, new: int) -> None:
        factors = None
        if self.switch_of is not None and is_matrix(slot.tensor):
            factors = self.switch_of(slot, step, old, new)
        if factors is None:
            super().switch(slot, step, scale, old, new)
            return
        add_lowrank(slot.tensor, factors, scale, self.chunk_size, self.passes(slot))

    def update(
        self,
        slot: TensorSlot,
        restore: tuple[Factors, float] | None,
        update: tuple[Factors, float],
    ) -> float | torch.Tensor:
        """A matrix's restore-and-update (:func:`~adamezo.kernels.lowrank.lowrank_update`) at its
        group's lr and weight decay; returns Σ(Δθ)², possibly as a 0-dim device tensor."""
        group = slot.group
        return lowrank_update(
            slot.tensor,
            restore,
            update,
            group["lr"],
            group["weight_decay"],
            self.chunk_size,
            self.passes(slot),
        )


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
