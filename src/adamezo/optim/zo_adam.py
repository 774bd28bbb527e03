"""ZO-Adam: Adam on the SPSA gradient estimate, with both moments in memory.

The exact update is in docs/algorithms.md §4.
"""

from __future__ import annotations

from typing import Any

import torch
from typing_extensions import Unpack

from adamezo._checks import check_betas, check_float
from adamezo.kernels import MomentUpdate
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    TensorSlot,
    ZerothOrderOptimizer,
    ZerothOrderOptions,
)
from adamezo.rules import bias_correction


class ZOAdam(ZerothOrderOptimizer):
    """Adam on ĝ_t = p_t z_t, holding the two model-sized moment buffers AdaMeZO avoids::

        m ← β₁ m + (1−β₁) ĝ,   v ← β₂ v + (1−β₂) ĝ²,   m̂ = m/(1−β₁^{t+1}),  v̂ = v/(1−β₂^{t+1})
        θ ← θ − η (m̂/(√v̂ + ε) + λ θ)

    The buffers ``exp_avg`` and ``exp_avg_sq`` live in ``state[param]`` in the parameter's dtype,
    as in ``torch.optim.Adam``. The update is one kernel pass per tensor
    (:class:`~adamezo.kernels.MomentUpdate`), so ``kernel`` picks numba, Triton or plain torch.

    Args:
        betas: (β₁, β₂) in [0, 1) (default (0.9, 0.999)); per param group.
        eps: ε > 0 (default 1e-8); per param group.

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-5,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps},
            **options,
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        # β = 1 would make the bias correction 1 − β^{t+1} zero; ε = 0 divides 0 by 0 wherever
        # every projected gradient so far was 0.
        group["betas"] = check_betas("betas", group["betas"], max_open=True)
        check_float("eps", group["eps"], 0.0, min_open=True)

    def _update(self, context: StepContext) -> float:
        restore, p, t = self._restore_scale(context), context.projected_grad, context.update_index
        updates = {id(group): _moment_rule(group, restore, p, t) for group in context.groups}

        def update(slot: TensorSlot) -> float | torch.Tensor:
            state = self.state[slot.param]
            if not state:
                state["exp_avg"] = torch.zeros_like(slot.tensor)
                state["exp_avg_sq"] = torch.zeros_like(slot.tensor)
            return self._kernel(slot.tensor).moment_update(
                slot.tensor,
                state["exp_avg"],
                state["exp_avg_sq"],
                self._stream_base(slot, context.step),
                updates[id(slot.group)],
                slot.offset,
            )

        return context.rewrite_summed(update)


def _moment_rule(group: dict[str, Any], restore: float, p: float, t: int) -> MomentUpdate:
    """The kernel's coefficients for one param group at update ``t``."""
    beta1, beta2 = group["betas"]
    return MomentUpdate(
        restore=restore,
        grad=p,
        beta1=beta1,
        beta2=beta2,
        correction1=bias_correction(beta1, t),
        correction2=bias_correction(beta2, t),
        eps=group["eps"],
        lr=group["lr"],
        weight_decay=group["weight_decay"],
    )
