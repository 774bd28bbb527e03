"""The base class of every zeroth-order optimizer: param groups, the SPSA step, state and logging.

A subclass says how to turn one step's projected gradient into an update (``_update``), and may
change where the closure is evaluated (``estimator``) and along what (``_make_directions``).
Everything else, the bookkeeping that makes a step safe, reproducible and resumable, lives here
once.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from adamezo._checks import check_float
from adamezo.collectives import LossReduction, ProcessGroupChoice, StepCollective, local_shard
from adamezo.kernels import (
    DEFAULT_CHUNK_SIZE,
    FusedUpdate,
    Kernel,
    KernelChoice,
    compute_dtype,
)
from adamezo.kernels import KernelSelector as _KernelSelector
from adamezo.kernels.reference import iter_chunks
from adamezo.noise import normal, query_seed, step_seed, stream_base
from adamezo.optim.config import NONFINITE_CHOICES, ZerothOrderConfig, ZerothOrderOptions
from adamezo.optim.context import StepContext, TensorSlot, check_group_params
from adamezo.optim.directions import Directions, ElementwiseDirections
from adamezo.optim.estimators import CentralDifference, Estimator
from adamezo.optim.state import ZerothOrderState, check_saved_state, check_state_shapes
from adamezo.optim.statistics import StepStatistics
from adamezo.perturbation import ExactPerturbation, perturbation_for
from adamezo.zo_step import Closure, Perturbation, evaluate_perturbed, interrupts_deferred

__all__ = [
    "NONFINITE_CHOICES",
    "NonFiniteLossError",
    "ParamsT",
    "StepContext",
    "TensorSlot",
    "ZerothOrderConfig",
    "ZerothOrderOptimizer",
    "ZerothOrderOptions",
]

ParamsT = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


class NonFiniteLossError(FloatingPointError):
    """The closure returned NaN or ±inf and the optimizer was built with ``nonfinite="raise"``."""


class ZerothOrderOptimizer(StepStatistics, Optimizer):
    """A ``torch.optim.Optimizer`` that estimates the gradient from two forward passes
    (docs/algorithms.md §1).

    Each ``step(closure)`` draws a direction z_t, evaluates ℓ± = L(θ ± μ z_t), forms the projected
    gradient p_t = (ℓ⁺ − ℓ⁻)/(2μ) and hands it to the subclass's update rule, which applies
    θ ← θ − η (u_t + λ θ) in the same pass that restores θ. It returns (ℓ⁺ + ℓ⁻)/2.

    Shared arguments:
        params: tensors or param-group dicts. Tensors with ``requires_grad=False`` are left alone.
        lr: η, per param group (so ``torch.optim.lr_scheduler`` works unchanged).
        perturbation_scale: μ > 0, one for the whole optimizer.
        weight_decay: λ ≥ 0, decoupled, per param group.
        seed: seeds every direction: the same seed and closure give bitwise-identical weights.
        direction_seeds: ``None`` (default) draws a fresh direction every step; an int N ≥ 1
            reuses N directions cyclically (step t moves along the direction of step t mod N),
            so at most N directions are ever explored.
        chunk_size: elements processed at once by the plain-torch kernel; bounds working memory.
        kernel: ``"auto"``, a registered kernel name (``adamezo.kernels.available_kernels()``),
            or a :class:`~adamezo.kernels.Kernel`.
        nonfinite: ``"skip"`` (default) skips a step whose loss is NaN or inf, restoring θ and
            warning once; ``"raise"`` restores θ and raises :class:`NonFiniteLossError`.
        process_group: data-parallel training over several processes. ``None`` (default) uses the
            default group when ``torch.distributed`` is initialised (``torchrun``,
            ``accelerate launch``) and does nothing otherwise; ``False`` never communicates
            (independent runs); a ``ProcessGroup`` uses that group. Each process evaluates the
            closure on its own shard of the batch; the passes' losses are averaged over the
            processes (weighted by ``step(..., weight=)``) in one all-reduce of a few scalars,
            so every process applies the same update. FSDP2 parameters (``fully_shard``) are
            perturbed and updated shard by shard; call
            ``adamezo.distributed.prepare_fsdp(model)`` after ``fully_shard``, so that every
            forward gathers the updated shards. See :mod:`adamezo.distributed`.
        perturbation: ``"exact"``: the closure sees round(θ + cμz) while θ is not written, and
            a step writes round(θ − η u), so lr 0 leaves θ unchanged (:mod:`adamezo.perturbation`);
            ``"in_place"`` moves θ, rounding it; ``"auto"`` (default): exact for 16-bit floats.
    """

    estimator: Estimator = CentralDifference()
    """Where the closure is evaluated and how its losses become projected gradients (one per
    query); a class attribute, or an instance one when it depends on the constructor's
    arguments (FZOO's number of queries)."""

    global_options: ClassVar[tuple[str, ...]] = ("perturbation_scale", "seed")
    """Options that are one value per optimizer and may not appear in a param group."""

    config_type: ClassVar[type[ZerothOrderConfig]] = ZerothOrderConfig
    """The dataclass of the optimizer-wide settings; a subclass with options of its own extends
    :class:`ZerothOrderConfig` and names the extension here."""

    config: ZerothOrderConfig
    """The optimizer-wide settings (frozen; ``load_state_dict`` replaces it with the saved one)."""

    directions: Directions
    """The direction family (:mod:`adamezo.optim.directions`): what d of a query is, regenerated
    from (seed, step, query, tensor); built once by ``_make_directions``."""

    def __init__(
        self,
        params: ParamsT,
        defaults: dict[str, Any],
        *,
        perturbation_scale: float = 1e-3,
        seed: int = 0,
        direction_seeds: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        kernel: KernelChoice = "auto",
        nonfinite: str = "skip",
        process_group: ProcessGroupChoice = None,
        perturbation: str = "auto",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(params, torch.Tensor):
            raise TypeError(
                "params must be an iterable of tensors or param-group dicts, got a single tensor; "
                "wrap it in a list"
            )
        params = list(params)
        if not params:
            raise ValueError("params must hold at least one tensor, got an empty iterable")
        self.config = self.config_type(
            perturbation_scale=perturbation_scale,
            direction_seeds=direction_seeds,
            seed=seed,
            chunk_size=chunk_size,
            kernel=kernel,
            nonfinite=nonfinite,
            process_group=process_group,
            perturbation=perturbation,
            **(config or {}),
        )
        self._kernels = _KernelSelector(kernel, chunk_size)
        self.directions = self._make_directions()
        self._collective = StepCollective(process_group)
        self._warned_nonfinite = False
        super().__init__(params, defaults)
        self._zo: ZerothOrderState = {  # type: ignore[typeddict-item]
            "optimizer": type(self).__name__,
            "config": self.config.saved(),
            "seed": self.config.seed,
            "steps": 0,
            "updates": 0,
            "skipped_steps": 0,
            "forward_passes": 0,
            "last_projected_grad": None,
            "last_update_norm": None,
            "last_loss": None,
            **self._initial_state(),
        }

    # ----------------------------------------------------------------- construction and groups

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after checking its tensors and hyperparameters (see the class docstring)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param group must be a dict, got {type(param_group).__name__}")
        existing = [p for group in self.param_groups for p in group["params"]]
        params = check_group_params(param_group.get("params"), existing)
        for option in self.global_options + tuple(self.config.saved()):
            if option in param_group:
                raise ValueError(
                    f"{option} is one value for the whole optimizer; pass it to the constructor, "
                    "not in a param group"
                )
        self._check_group({**self.defaults, **param_group})
        super().add_param_group({**param_group, "params": params})

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate a group's hyperparameters; subclasses extend this for their own options."""
        check_float("lr", group["lr"], 0.0)
        check_float("weight_decay", group["weight_decay"], 0.0)

    def _initial_state(self) -> dict[str, Any]:
        """The subclass's own global state (plain Python values); part of ``state_dict``."""
        return {}

    def _state_shape(self, name: str, tensor: torch.Tensor) -> tuple[int, ...]:
        """The shape per-tensor buffer ``name`` of a parameter with local storage ``tensor``
        has: the parameter's own, unless a subclass keeps smaller factors."""
        return tuple(tensor.shape)

    def _make_directions(self) -> Directions:
        """The direction family of this optimizer (built once, in the constructor): Gaussian
        noise through the selected kernels unless a subclass says otherwise."""
        return ElementwiseDirections(self._query_seed, self._kernel)

    @property
    def passes(self) -> tuple[float, ...]:
        """Offsets c at which the closure is evaluated, θ + c·μ·d, in order (one loss each)."""
        return self.estimator.offsets

    @property
    def pass_queries(self) -> tuple[int, ...]:
        """The query whose direction each of ``passes`` moves along."""
        return self.estimator.pass_queries

    @property
    def perturbation_scale(self) -> float:
        return self.config.perturbation_scale

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def direction_seeds(self) -> int | None:
        """N when N directions are reused cyclically, None when every step draws a fresh one."""
        return self.config.direction_seeds

    @property
    def nonfinite(self) -> str:
        return self.config.nonfinite

    @property
    def process_group(self) -> ProcessGroupChoice:
        return self.config.process_group

    # ----------------------------------------------------------------------------- the step

    def _direction_seed(self, step: int) -> int:
        """The seed of the direction z used at ``step``: its own, or with ``direction_seeds`` = N
        that of step ``step mod N``. Every place that regenerates a direction goes through here."""
        cycle = self.direction_seeds
        return step_seed(self.seed, step if cycle is None else step % cycle)

    def _query_seed(self, step: int, query: int) -> int:
        """The seed of query ``query``'s direction at ``step`` (query 0: the step's own)."""
        return query_seed(self._direction_seed(step), query)

    def _slots(self) -> tuple[TensorSlot, ...]:
        # Keys count every tensor in order, trainable or not, so freezing one tensor does not
        # change the noise any other tensor receives.
        slots, key = [], 0
        for group in self.param_groups:
            for param in group["params"]:
                if param.requires_grad:
                    tensor, offset, shards = local_shard(param)
                    slots.append(TensorSlot(key, param, tensor, group, offset, shards))
                key += 1
        return tuple(slots)

    def _kernel(self, tensor: torch.Tensor) -> Kernel:
        return self._kernels(tensor)

    def shift(self, slots: Sequence[TensorSlot], step: int, scale: float, query: int = 0) -> None:
        """θ ← round(θ + scale·d) in place, for each of ``slots``, where d is the direction of
        query ``query`` at ``step`` in this optimizer's direction family (``directions``).

        A low-level hook of the step (in-place perturbation, :mod:`adamezo.perturbation`);
        training code never calls it."""
        for slot in slots:
            self.directions.shift(slot, slot.tensor, step, query, scale)

    def perturbed_copy(
        self, slot: TensorSlot, step: int, scale: float, query: int = 0
    ) -> torch.Tensor:
        """round(θ + scale·d) for one slot as a new tensor, θ untouched: bitwise what
        :meth:`shift` would leave in θ (the exact perturbation's copies)."""
        return self.directions.perturbed(slot, step, query, scale)

    def _check_ready(self) -> None:
        """Raise before any forward pass if this step cannot be taken (e.g. schedule exhausted)."""

    def _check_slots(self, slots: Sequence[TensorSlot]) -> None:
        """Raise before any forward pass if the direction family cannot move these tensors."""

    def _begin_collective(
        self, slots: Sequence[TensorSlot], weight: float | None
    ) -> LossReduction | None:
        """Check, before anything changes, that the processes (if several) are in step; the
        reduction of this step's losses, or None on one process."""
        zo = self._zo

        def agreement() -> tuple[dict[str, int], list[torch.Tensor]]:
            facts = {
                "seed (high 32 bits)": self.seed >> 32,
                "seed (low 32 bits)": self.seed & 0xFFFFFFFF,
                "direction_seeds (0: fresh every step)": self.direction_seeds or 0,
                "step count": zo["steps"],
                "update count": zo["updates"],
                "number of trainable tensors": len(slots),
                "number of trainable elements": sum(slot.param.numel() for slot in slots),
            }
            return facts, [slot.tensor for slot in slots if slot.shards == 1]

        return self._collective.begin(
            step=zo["steps"],
            passes=len(self.passes),
            weight=weight,
            shards={slot.shards for slot in slots},
            agreement=agreement,
            advice="every process must build the optimizer with the same seed over the same "
            "model and weights (adamezo.distributed.broadcast_parameters copies rank 0's "
            "weights to all), and load the same state_dict",
        )

    def step(  # type: ignore[override]
        self, closure: Closure | None = None, *, weight: float | None = None
    ) -> torch.Tensor:
        """One SPSA step; ``closure()`` evaluates the loss on one batch and is called
        ``len(passes)`` times under ``torch.no_grad()``. Returns (ℓ⁺ + ℓ⁻)/2.

        In data-parallel training each process passes its own shard's closure; ``weight`` ≥ 0 is
        this process's share of the global batch (e.g. its number of examples; default 1, equal
        shares), and the losses are averaged over the processes with these weights.
        """
        if closure is None or not callable(closure):
            raise TypeError(
                f"{type(self).__name__}.step() needs a closure: a function with no arguments "
                "that computes and returns the loss of one batch"
            )
        self._check_ready()
        for param_group in self.param_groups:
            # A scheduler or a user may have set lr (or another option) since construction: a
            # NaN lr would turn every weight to NaN.
            self._check_group(param_group)
        slots, step, mu = self._slots(), self._zo["steps"], self.perturbation_scale
        self._check_slots(slots)
        estimator = self.estimator
        reduction = self._begin_collective(slots, weight)
        perturbation = perturbation_for(self, slots, step)
        devices = [slot.tensor.device for slot in slots]
        losses = evaluate_perturbed(
            closure,
            perturbation,
            estimator.offsets,
            devices,
            reduce=reduction,
            queries=estimator.pass_queries,
        )
        values = tuple(float(loss) for loss in losses)
        self._last_losses = values
        mean_loss = estimator.loss(losses)
        if not all(math.isfinite(v) for v in values):
            self._skip_nonfinite(step, values, perturbation, mean_loss)
            return mean_loss
        grads = estimator.projected_grads(values, mu)
        context = StepContext(
            step=step,
            update_index=self._zo["updates"],
            projected_grad=grads[0] if len(grads) == 1 else math.fsum(grads) / len(grads),
            projected_grads=grads,
            losses=values,
            offset=perturbation.offset,
            query=perturbation.query,
            slots=slots,
            perturbation=perturbation,
            process_group=None if reduction is None else reduction.group,
            reduction=reduction,
        )
        self._apply(context, mean_loss)
        return mean_loss

    def _skip_nonfinite(
        self,
        step: int,
        values: tuple[float, ...],
        perturbation: Perturbation,
        mean_loss: torch.Tensor,
    ) -> None:
        """A pass's loss is NaN or ±inf: restore θ, count the step as skipped, and warn once
        (``nonfinite="skip"``) or raise :class:`NonFiniteLossError` (``"raise"``)."""
        perturbation.undo()
        self._count_step(mean_loss)
        self._zo["skipped_steps"] += 1
        # In place, θ + μd - μd rounds back to within an ulp of θ; only an exact perturbation,
        # which never moves θ, leaves it bit for bit as it was.
        how = (
            "bitwise"
            if isinstance(perturbation, ExactPerturbation)
            else "up to rounding (perturbation='exact' restores them bitwise)"
        )
        if self.nonfinite == "raise":
            raise NonFiniteLossError(
                f"step {step}: the closure returned a non-finite loss {values}; the weights "
                f"were restored {how}"
            )
        if not self._warned_nonfinite:
            warnings.warn(
                f"step {step}: the closure returned a non-finite loss {values}; the step was "
                f"skipped and the weights restored {how} (further skips are counted in "
                "skipped_steps, not warned about)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_nonfinite = True

    def _apply(self, context: StepContext, mean_loss: torch.Tensor) -> None:
        """Run the update rule and advance the counters, as one whole with respect to ctrl-c,
        which waits for the update to finish, so that resuming from the state stays exact."""
        zo = self._zo
        with interrupts_deferred():
            try:
                sq_norm = self._update(context)
            except BaseException:
                context.abandon()
                raise
            self._count_step(mean_loss)
            zo["updates"] += 1
            zo["last_projected_grad"] = context.projected_grad
            zo["last_update_norm"] = math.sqrt(context.global_sum(sq_norm))

    def _count_step(self, mean_loss: torch.Tensor) -> None:
        zo = self._zo
        zo["steps"] += 1
        zo["forward_passes"] += len(self.passes)
        zo["last_loss"] = float(mean_loss)

    def _update(self, context: StepContext) -> float:
        """Restore θ from ``context.offset`` and apply this step's update; return Σ(Δθ)².

        Compute every scalar (and raise any error) before writing the first tensor, visit the
        tensors through :meth:`StepContext.rewrite` (or :meth:`StepContext.rewrite_summed`), and
        change the optimizer's own state only at the end.
        """
        raise NotImplementedError

    def _fused_update(
        self, context: StepContext, streams: Sequence[int], updates: Sequence[FusedUpdate]
    ) -> float:
        """Run the kernels' fused restore-and-update over every tensor.

        ``streams`` are the step indices whose directions enter the update, the current one
        first; ``updates`` holds the coefficients of each of ``context.groups``, in that order.
        """
        seeds = [self._direction_seed(s) for s in streams]
        by_group = {id(group): u for group, u in zip(context.groups, updates, strict=True)}

        def update(slot: TensorSlot) -> float | torch.Tensor:
            bases = [stream_base(seed, slot.key) for seed in seeds]
            kernel = self._kernel(slot.tensor)
            spec = by_group[id(slot.group)]
            return kernel.fused_update_deferred(slot.tensor, bases, spec, slot.offset)

        return context.rewrite_summed(update)

    def _noise_update(self, context: StepContext, coefficients: float | Sequence[float]) -> float:
        """θ ← θ − η (c·z_t + λ θ), fused with the restore: the MeZO-shaped update.

        ``coefficients`` is c, or one c for each of ``context.groups``.
        """
        groups = context.groups
        if isinstance(coefficients, (int, float)):
            coefficients = [coefficients] * len(groups)
        restore = self._restore_scale(context)
        updates = [
            FusedUpdate.sgd(restore, (c,), group["lr"], group["weight_decay"])
            for group, c in zip(groups, coefficients, strict=True)
        ]
        return self._fused_update(context, [context.step], updates)

    def _stream_base(self, slot: TensorSlot, step: int) -> int:
        """The base of the noise stream of ``slot`` along z_step (query 0), for the kernels."""
        return stream_base(self._direction_seed(step), slot.key)

    def _noise_chunks(
        self, slot: TensorSlot, step: int
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """(positions, view of θ, z in the compute dtype) chunk by chunk, for updates written in
        plain torch (LOZO-M's momentum of a 1-D tensor)."""
        base = self._stream_base(slot, step)
        dtype = compute_dtype(slot.tensor.dtype)
        for start, chunk in iter_chunks(slot.tensor, self.config.chunk_size):
            z = normal(base, chunk.numel(), slot.offset + start, chunk.device).to(dtype)
            yield slice(start, start + chunk.numel()), chunk, z

    def _restore_scale(self, context: StepContext) -> float:
        """The multiple of z_t that brings θ back from where the passes left it."""
        return -context.offset * self.perturbation_scale

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state (per-tensor buffers, param groups) plus the zeroth-order state:
        seed, step counters, the projected-gradient history and optimizer-wide options."""
        state = super().state_dict()
        state["zo"] = copy.deepcopy(self._zo)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by the same optimizer class; saved options win, as in torch."""
        state_dict = dict(state_dict)
        zo = check_saved_state(state_dict.pop("zo", None), type(self).__name__)
        # The saved options win, and they say what shapes the saved buffers must have.
        previous = self.config
        self.config = self.config.restored(zo["config"], zo["seed"])
        try:
            check_state_shapes(state_dict, self.param_groups, self._state_shape)
            super().load_state_dict(state_dict)
        except BaseException:
            self.config = previous
            raise
        self._zo = copy.deepcopy(zo)
        self._collective.forget()  # the processes must agree again on where they resume
