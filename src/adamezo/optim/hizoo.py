"""HiZOO: zeroth-order steps preconditioned by a diagonal Hessian estimate.

The exact update is in docs/algorithms.md §6.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from typing_extensions import Unpack

from adamezo._checks import check_float
from adamezo.kernels.reference import add_in_compute_dtype
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    TensorSlot,
    ZerothOrderOptimizer,
    ZerothOrderOptions,
)
from adamezo.optim.directions import Directions, SeedOf
from adamezo.optim.estimators import CentralDifference


class HiZOO(ZerothOrderOptimizer):
    """Zeroth-order optimizer with a diagonal Hessian estimate H (one model-sized buffer).

    Three passes per step: ℓ⁰ = L(θ), ℓ± = L(θ ± μ H^{−1/2} ⊙ z_t). Then::

        Ĥ = |ℓ⁺ + ℓ⁻ − 2ℓ⁰| / (2μ²) · H ⊙ z_t²,    H ← (1−α) H + α Ĥ
        θ ← θ − η (p_t z_t / √H + λ θ)                (with the updated H)

    H starts at ones and lives in ``state[param]["hessian"]``. ``step`` returns (ℓ⁺ + ℓ⁻)/2.

    Args:
        hessian_smoothing: α in [0, 1) (default 1e-8).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    estimator = CentralDifference(center=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-6,
        *,
        hessian_smoothing: float = 1e-8,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay, "hessian_smoothing": hessian_smoothing},
            **options,
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        # α = 1 would replace H by the new estimate alone, which is 0 where the loss has no
        # curvature along z, and z/√H would be infinite; α < 1 keeps H ≥ (1−α)^t > 0.
        check_float("hessian_smoothing", group["hessian_smoothing"], 0.0, 1.0, max_open=True)

    def _hessian(self, slot: TensorSlot) -> torch.Tensor:
        state = self.state[slot.param]
        if "hessian" not in state:
            state["hessian"] = torch.ones_like(slot.tensor)
        return state["hessian"].view(-1)

    def _make_directions(self) -> Directions:
        return _PreconditionedDirections(self._query_seed, self._hessian, self._noise_chunks)

    def _update(self, context: StepContext) -> float:
        mu = self.perturbation_scale
        loss_center, loss_plus, loss_minus = context.losses
        curvature = abs(loss_plus + loss_minus - 2.0 * loss_center) / (2.0 * mu * mu)
        restore, p = self._restore_scale(context), context.projected_grad
        sq_norm = 0.0
        for slot in context.rewrite():
            group = slot.group
            alpha, lr, weight_decay = group["hessian_smoothing"], group["lr"], group["weight_decay"]
            hessian = self._hessian(slot)
            for where, chunk, z in self._noise_chunks(slot, context.step):
                h = hessian[where].to(z.dtype, copy=True)
                theta = chunk.to(z.dtype, copy=True).add_(z.div(h.sqrt()).mul_(restore))
                estimate = h * z.square() * curvature
                h = h.mul_(1.0 - alpha).add_(estimate.mul_(alpha))
                step = z.mul_(p).div_(h.sqrt()).add_(theta * weight_decay).mul_(lr)
                sq_norm += float(step.double().square().sum())
                hessian[where] = h
                chunk.copy_(theta.sub_(step))
        return sq_norm


class _PreconditionedDirections(Directions):
    """HiZOO's direction H^{−1/2} ⊙ z_t, H the optimizer's current diagonal Hessian estimate."""

    def __init__(
        self,
        seed_of: SeedOf,
        hessian_of: Callable[[TensorSlot], torch.Tensor],
        noise_chunks: Callable[
            [TensorSlot, int], Iterator[tuple[slice, torch.Tensor, torch.Tensor]]
        ],
    ) -> None:
        super().__init__(seed_of)
        self.hessian_of = hessian_of
        self.noise_chunks = noise_chunks

    def shift(
        self, slot: TensorSlot, tensor: torch.Tensor, step: int, query: int, scale: float
    ) -> None:
        hessian = self.hessian_of(slot)
        for where, chunk, z in self.noise_chunks(dataclasses.replace(slot, tensor=tensor), step):
            delta = z.div_(hessian[where].to(z.dtype).sqrt()).mul_(scale)
            add_in_compute_dtype(chunk, delta)
