"""MeZO-switch: MeZO with its update rescaled to a given norm schedule (a control).

See docs/algorithms.md §6.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from typing_extensions import Unpack

from adamezo._checks import check_float
from adamezo.noise import stream_base
from adamezo.optim.base import ParamsT, StepContext, ZerothOrderOptimizer, ZerothOrderOptions

NormSchedule = Sequence[float] | Callable[[int], float]


class MeZOSwitch(ZerothOrderOptimizer):
    """MeZO whose step has the norm a schedule prescribes: the control that shows whether
    AdaMeZO gains by direction or merely by step length.

    Update t moves θ along sign(p_t)·z_t by exactly ``norm_schedule[t]`` (or ``norm_schedule(t)``)::

        u_t = (s_t / (η ‖z_t‖)) · sign(p_t) · z_t,    θ ← θ − η (u_t + λ θ),   so ‖η u_t‖ = s_t

    Feed it the ``update_norm`` values an AdaMeZO run logged. η cancels out of the step, so lr
    (per group) only scales weight decay here.
    Computing ‖z_t‖ costs one extra noise pass per step (no extra forward pass).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    def __init__(
        self,
        params: ParamsT,
        norm_schedule: NormSchedule,
        lr: float = 1e-6,
        *,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        if isinstance(norm_schedule, (str, bytes)) or not (
            callable(norm_schedule) or isinstance(norm_schedule, Sequence)
        ):
            raise TypeError(
                "norm_schedule must be a sequence of norms >= 0 or a callable step -> norm, got "
                f"{type(norm_schedule).__name__}"
            )
        self.norm_schedule = norm_schedule
        super().__init__(
            params,
            {"lr": lr, "weight_decay": weight_decay},
            **options,
        )

    def target_norm(self, update_index: int) -> float:
        """s_t for update ``update_index``, checked to be a finite number >= 0."""
        schedule = self.norm_schedule
        if callable(schedule):
            value = schedule(update_index)
        elif update_index < len(schedule):
            value = schedule[update_index]
        else:
            raise ValueError(
                f"norm_schedule has {len(schedule)} entries; update {update_index} needs one more"
            )
        return check_float(f"norm_schedule[{update_index}]", value, 0.0)

    def _check_ready(self) -> None:
        self.target_norm(self.num_updates)

    def _update(self, context: StepContext) -> float:
        target = self.target_norm(context.update_index)
        seed = self._direction_seed(context.step)
        z_sq_sum = sum(
            self._kernel(s.tensor).noise_sq_sum(s.tensor, stream_base(seed, s.key), s.offset)
            for s in context.slots
        )
        z_norm = math.sqrt(context.global_sum(z_sq_sum))
        sign = math.copysign(1.0, context.projected_grad) if context.projected_grad else 0.0

        # η cancels: every group moves by s_t·sign(p)·z/‖z‖, so the total norm is s_t.
        coefficients = [
            0.0 if group["lr"] == 0 or z_norm == 0 else sign * target / (group["lr"] * z_norm)
            for group in context.groups
        ]
        return self._noise_update(context, coefficients)
