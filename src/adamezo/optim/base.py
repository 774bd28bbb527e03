"""The base class of every zeroth-order optimizer: param groups, the SPSA step, state and logging.

A subclass says how to turn one step's projected gradient into an update (``_update``), and may
change where the closure is evaluated (``passes``, ``_shift``). Everything else, the bookkeeping
that makes a step safe, reproducible and resumable, lives here once.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict

import torch
from torch.optim import Optimizer

from adamezo._checks import check_choice, check_float, check_int
from adamezo.collectives import (
    DistributedStepError,
    ProcessGroupChoice,
    active_group,
    check_agreement,
    check_process_group,
    group_size,
    local_shard,
    reduce_losses,
    sum_over_shards,
)
from adamezo.kernels import DEFAULT_CHUNK_SIZE, FusedUpdate, Kernel, KernelChoice, compute_dtype
from adamezo.kernels import KernelSelector as _KernelSelector
from adamezo.kernels.reference import iter_chunks
from adamezo.noise import MASK64, normal, step_seed, stream_base
from adamezo.zo_step import Closure, Perturbation, evaluate_perturbed, interrupts_deferred

ParamsT = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

NONFINITE_CHOICES = ("skip", "raise")


class ZerothOrderOptions(TypedDict, total=False):
    """Keyword arguments every optimizer of the family accepts (see ZerothOrderOptimizer)."""

    perturbation_scale: float
    seed: int
    direction_seeds: int | None
    chunk_size: int
    kernel: KernelChoice
    nonfinite: str
    process_group: ProcessGroupChoice


class NonFiniteLossError(FloatingPointError):
    """The closure returned NaN or ±inf and the optimizer was built with ``nonfinite="raise"``."""


@dataclass(frozen=True)
class TensorSlot:
    """One trainable tensor as the kernels see it: its noise key, the parameter (which keys its
    ``state``), the storage the kernels write, and its param group.

    ``offset`` is the index of ``tensor``'s first element in the full tensor, non-zero only for a
    shard of a distributed parameter; ``shards`` is the number of distinct shards the parameter
    is split into across the processes (1 when every process holds all of it).
    """

    key: int
    param: torch.Tensor
    tensor: torch.Tensor
    group: dict[str, Any]
    offset: int = 0
    shards: int = 1


@dataclass(frozen=True)
class StepContext:
    """What one successful step hands to the update rule."""

    step: int
    """Index of this step among all steps drawn (skipped ones included): it seeds z_t."""
    update_index: int
    """t of SPEC: how many updates were applied before this one."""
    projected_grad: float
    losses: tuple[float, ...]
    """The closure's values, one per pass, in the order of ``passes``."""
    offset: float
    """Where θ sits now, in units of the perturbation (−1 after the standard passes)."""
    slots: tuple[TensorSlot, ...]
    perturbation: Perturbation
    """Where each tensor stands; the update releases each slot once it has rewritten it."""
    process_group: Any = None
    """The group this step communicated over, None on a single process."""


class ZerothOrderOptimizer(Optimizer):
    """A ``torch.optim.Optimizer`` that estimates the gradient from two forward passes (SPEC §1).

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
    """

    passes: ClassVar[tuple[float, ...]] = (1.0, -1.0)
    """Offsets c at which the closure is evaluated, θ + c·μ·d; the last two must be +1, −1."""

    global_options: ClassVar[tuple[str, ...]] = ("perturbation_scale", "seed")
    """Options that are one value per optimizer and may not appear in a param group."""

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
        config: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(params, torch.Tensor):
            raise TypeError(
                "params must be an iterable of tensors or param-group dicts, got a single tensor; "
                "wrap it in a list"
            )
        params = list(params)
        if not params:
            raise ValueError("params must hold at least one tensor, got an empty iterable")
        if direction_seeds is not None:
            direction_seeds = check_int("direction_seeds", direction_seeds, 1)
        self._config: dict[str, Any] = {
            "perturbation_scale": check_float(
                "perturbation_scale", perturbation_scale, 0.0, min_open=True
            ),
            "direction_seeds": direction_seeds,
            **(config or {}),
        }
        check_int("seed", seed, 0, MASK64)
        self.nonfinite = check_choice("nonfinite", nonfinite, NONFINITE_CHOICES)
        check_int("chunk_size", chunk_size, 1)
        self._kernels = _KernelSelector(kernel, chunk_size)
        self._warned_nonfinite = False
        self.process_group = check_process_group(process_group)
        self._checked_group: Any = None
        super().__init__(params, defaults)
        self._zo: dict[str, Any] = {
            "optimizer": type(self).__name__,
            "config": self._config,
            "seed": int(seed),
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
        params = param_group.get("params")
        if isinstance(params, torch.Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("a param group's params must be an ordered iterable, not a set")
        params = list(params or ())
        for entry in params:
            _check_param(entry[1] if isinstance(entry, tuple) else entry)
        _check_distinct(
            [p for group in self.param_groups for p in group["params"]],
            [entry[1] if isinstance(entry, tuple) else entry for entry in params],
        )
        for option in self.global_options + tuple(self._config):
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

    # ----------------------------------------------------------------------------- the step

    @property
    def perturbation_scale(self) -> float:
        return self._config["perturbation_scale"]

    @property
    def seed(self) -> int:
        return self._zo["seed"]

    @property
    def direction_seeds(self) -> int | None:
        """N when N directions are reused cyclically, None when every step draws a fresh one."""
        return self._config.get("direction_seeds")

    def _direction_seed(self, step: int) -> int:
        """The seed of the direction z used at ``step``: its own, or with ``direction_seeds`` = N
        that of step ``step mod N``. Every place that regenerates a direction goes through here."""
        cycle = self.direction_seeds
        return step_seed(self.seed, step if cycle is None else step % cycle)

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

    def _shift(self, slots: Sequence[TensorSlot], step: int, scale: float) -> None:
        """θ ← θ + scale·d for the direction d of ``step`` (z_t here; HiZOO scales it)."""
        seed = self._direction_seed(step)
        for slot in slots:
            base = stream_base(seed, slot.key)
            self._kernel(slot.tensor).add_noise(slot.tensor, base, scale, slot.offset)

    def _reduce_losses(
        self, losses: list[torch.Tensor] | None, *, weight: float, group: Any, step: int
    ) -> list[torch.Tensor] | None:
        """The passes' losses averaged over the processes of ``group``, weighted by ``weight``.

        Called by every process inside the protected part of the step; a process whose closure
        raised calls it with ``losses=None``, and the others then raise
        :class:`DistributedStepError`, so that all of them restore θ and stay in step.
        """
        reduced, failed = reduce_losses(losses, len(self.passes), weight, group)
        if losses is None:
            return None
        if failed:
            raise DistributedStepError(
                f"step {step}: the closure or the step's arguments raised on {failed} of "
                f"{group_size(group)} processes; "
                "the step was abandoned and the weights restored on every process"
            )
        if reduced is None:
            raise DistributedStepError(
                f"step {step}: the step weights sum to zero over the processes; pass "
                "step(closure, weight=n) with n > 0 on at least one process"
            )
        return reduced

    def _check_in_step(self, group: Any, slots: Sequence[TensorSlot]) -> None:
        """Raise unless every process of ``group`` has the same seed, step count, trainable
        tensors and (unsharded) weights: one small all-reduce, before the first step on a group
        and after ``load_state_dict``, before anything is changed."""
        shards = {slot.shards for slot in slots} or {1}
        if len(shards) > 1:
            raise ValueError(
                "all trainable parameters must be sharded alike (FSDP2 on one mesh) or not at "
                f"all; got shard counts {sorted(shards)}"
            )
        (count,) = shards
        if group_size(group) % count:
            raise ValueError(
                f"parameters are split into {count} shards, which does not divide the "
                f"{group_size(group)} processes of the process group"
            )
        zo = self._zo
        whole = [slot.tensor for slot in slots if slot.shards == 1]
        check_agreement(
            group,
            {
                "seed (high 32 bits)": zo["seed"] >> 32,
                "seed (low 32 bits)": zo["seed"] & 0xFFFFFFFF,
                "direction_seeds (0: fresh every step)": self.direction_seeds or 0,
                "step count": zo["steps"],
                "update count": zo["updates"],
                "number of trainable tensors": len(slots),
                "number of trainable elements": sum(slot.param.numel() for slot in slots),
                "shard count": count,
            },
            checksums=whole,
            advice="every process must build the optimizer with the same seed over the same "
            "model and weights (adamezo.distributed.broadcast_parameters copies rank 0's "
            "weights to all), and load the same state_dict",
        )

    def _global_sum(self, value: float, context: StepContext) -> float:
        """Complete a sum over this process's elements of ``context.slots`` to the sum over all
        elements: the identity unless parameters are sharded across the processes."""
        shards = context.slots[0].shards if context.slots else 1
        if shards == 1:
            return value
        return sum_over_shards(value, shards, context.process_group)

    def _check_ready(self) -> None:
        """Raise before any forward pass if this step cannot be taken (e.g. schedule exhausted)."""

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
        zo = self._zo
        slots = self._slots()
        step = zo["steps"]
        group = active_group(self.process_group)
        reduce = None
        if group is not None:
            if group is not self._checked_group:
                self._check_in_step(group, slots)
                self._checked_group = group
            try:
                weight = _check_weight(weight)
            except (TypeError, ValueError):
                # The weight is this process's own argument: tell the others, who are waiting
                # for this process's losses, that the step is off (they raise and restore).
                reduce_losses(None, len(self.passes), 0.0, group)
                raise
            reduce = functools.partial(self._reduce_losses, weight=weight, group=group, step=step)
        elif slots and any(slot.shards > 1 for slot in slots):
            raise ValueError(
                "the parameters are sharded across processes (FSDP2), so the optimizer must "
                "communicate: use process_group=None or the group they are sharded over"
            )
        else:
            weight = _check_weight(weight)
        mu = self.perturbation_scale
        perturbation = Perturbation(
            lambda i, c: self._shift(slots[i : i + 1], step, c * mu), len(slots)
        )
        devices = [slot.tensor.device for slot in slots]
        losses = evaluate_perturbed(closure, perturbation, self.passes, devices, reduce=reduce)
        values = tuple(float(loss) for loss in losses)
        mean_loss = (losses[-2] + losses[-1]) / 2

        if not all(math.isfinite(v) for v in values):
            perturbation.undo()
            self._count_step(mean_loss)
            zo["skipped_steps"] += 1
            if self.nonfinite == "raise":
                raise NonFiniteLossError(
                    f"step {step}: the closure returned a non-finite loss {values}; the weights "
                    "were restored"
                )
            if not self._warned_nonfinite:
                warnings.warn(
                    f"step {step}: the closure returned a non-finite loss {values}; the step was "
                    "skipped and the weights restored (further skips are counted in "
                    "skipped_steps, not warned about)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned_nonfinite = True
            return mean_loss

        projected_grad = (values[-2] - values[-1]) / (2.0 * mu)
        context = StepContext(
            step=step,
            update_index=zo["updates"],
            projected_grad=projected_grad,
            losses=values,
            offset=perturbation.offset,
            slots=slots,
            perturbation=perturbation,
            process_group=group,
        )
        # ctrl-c waits for the update to finish: the step then completes as a whole, weights
        # and state together, and resuming from the state stays exact.
        with interrupts_deferred():
            try:
                sq_norm = self._update(context)
            except BaseException:
                self._abandon_update(context)
                raise
            self._count_step(mean_loss)
            zo["updates"] += 1
            zo["last_projected_grad"] = projected_grad
            zo["last_update_norm"] = math.sqrt(self._global_sum(sq_norm, context))
        return mean_loss

    def _count_step(self, mean_loss: torch.Tensor) -> None:
        zo = self._zo
        zo["steps"] += 1
        zo["forward_passes"] += len(self.passes)
        zo["last_loss"] = float(mean_loss)

    def _abandon_update(self, context: StepContext) -> None:
        """After the update raised: move the tensors it has not rewritten back to θ.

        Update rules compute every scalar before they write a tensor, so an error in the rule
        (or in an argument it checks) leaves all of θ and the optimizer state as they were.
        Only a failure inside a kernel, between tensors (out of memory, a bug), can leave some
        tensors updated; that is said in a warning, since θ is then neither θ_t nor θ_{t+1}.
        """
        perturbation = context.perturbation
        rewritten = perturbation.released
        perturbation.undo()
        if rewritten:
            warnings.warn(
                f"step {context.step}: the update failed after rewriting {rewritten} of "
                f"{len(context.slots)} trainable tensors; those hold their updated values, the "
                "others were restored, and the optimizer state was not advanced",
                RuntimeWarning,
                stacklevel=4,
            )

    def _update(self, context: StepContext) -> float:
        """Restore θ from ``context.offset`` and apply this step's update; return Σ(Δθ)².

        Compute every scalar (and raise any error) before writing the first tensor, visit the
        tensors through :meth:`_rewrite`, and change the optimizer's own state only at the end.
        """
        raise NotImplementedError

    @staticmethod
    def _rewrite(context: StepContext) -> Iterator[TensorSlot]:
        """The step's slots in order, each released from the perturbation once the loop body
        that rewrites it has finished (a body that raises leaves its slot to be restored)."""
        for index, slot in enumerate(context.slots):
            yield slot
            context.perturbation.release(index)

    def _fused_update(
        self,
        context: StepContext,
        streams: Sequence[int],
        rule: Callable[[dict[str, Any]], FusedUpdate],
    ) -> float:
        """Run the kernels' fused restore-and-update over every tensor.

        ``streams`` are the step indices whose directions enter the update, the current one first;
        ``rule(group)`` gives the coefficients for a param group (built once per group).
        """
        seeds = [self._direction_seed(s) for s in streams]
        rules = {id(slot.group): rule(slot.group) for slot in context.slots}
        total = 0.0
        for slot in self._rewrite(context):
            bases = [stream_base(seed, slot.key) for seed in seeds]
            kernel = self._kernel(slot.tensor)
            total += kernel.fused_update(slot.tensor, bases, rules[id(slot.group)], slot.offset)
        return total

    def _noise_update(
        self,
        context: StepContext,
        coefficient: float | Callable[[dict[str, Any]], float],
    ) -> float:
        """θ ← θ − η (c·z_t + λ θ), fused with the restore: the MeZO-shaped update.

        ``coefficient`` is c, or a function giving c for a param group.
        """
        restore = self._restore_scale(context)

        def rule(group: dict[str, Any]) -> FusedUpdate:
            c = coefficient(group) if callable(coefficient) else coefficient
            return FusedUpdate(
                restore=restore,
                m_coefs=(c,),
                v_coefs=None,
                gain=1.0,
                eps=0.0,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
            )

        return self._fused_update(context, [context.step], rule)

    def _noise_chunks(
        self, slot: TensorSlot, step: int
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """(positions, view of θ, z in the compute dtype) chunk by chunk, for the baselines whose
        updates read model-sized state buffers and so are written in plain torch."""
        base = stream_base(self._direction_seed(step), slot.key)
        dtype = compute_dtype(slot.tensor.dtype)
        for start, chunk in iter_chunks(slot.tensor, self._kernels.chunk_size):
            z = normal(base, chunk.numel(), slot.offset + start, chunk.device).to(dtype)
            yield slice(start, start + chunk.numel()), chunk, z

    def _restore_scale(self, context: StepContext) -> float:
        """The multiple of z_t that brings θ back from where the passes left it."""
        return -context.offset * self.perturbation_scale

    # ------------------------------------------------------------------ state and logging

    @property
    def last_projected_grad(self) -> float | None:
        """p_t of the last applied update (None before the first)."""
        return self._zo["last_projected_grad"]

    @property
    def last_update_norm(self) -> float | None:
        """‖θ_{t+1} − θ_t‖₂ over all trainable tensors for the last applied update."""
        return self._zo["last_update_norm"]

    @property
    def last_loss(self) -> float | None:
        """(ℓ⁺ + ℓ⁻)/2 of the last step, skipped or not."""
        return self._zo["last_loss"]

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because the loss was not finite."""
        return self._zo["skipped_steps"]

    @property
    def num_steps(self) -> int:
        """Steps taken, skipped ones included."""
        return self._zo["steps"]

    @property
    def num_updates(self) -> int:
        """Updates applied (steps minus skipped steps)."""
        return self._zo["updates"]

    @property
    def forward_passes(self) -> int:
        """Closure evaluations so far: the cost measure of zeroth-order training."""
        return self._zo["forward_passes"]

    def metrics(self) -> dict[str, float | int | None]:
        """The numbers worth logging after a step, in one dict."""
        return {
            "loss": self.last_loss,
            "projected_grad": self.last_projected_grad,
            "update_norm": self.last_update_norm,
            "steps": self.num_steps,
            "updates": self.num_updates,
            "skipped_steps": self.skipped_steps,
            "forward_passes": self.forward_passes,
        }

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state (per-tensor buffers, param groups) plus the zeroth-order state:
        seed, step counters, the projected-gradient history and optimizer-wide options."""
        state = super().state_dict()
        state["zo"] = copy.deepcopy(self._zo)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by the same optimizer class; saved options win, as in torch."""
        state_dict = dict(state_dict)
        zo = state_dict.pop("zo", None)
        if not isinstance(zo, dict):
            raise ValueError(
                "state_dict has no 'zo' entry: it was not saved by an adamezo optimizer"
            )
        if zo.get("optimizer") != type(self).__name__:
            raise ValueError(
                f"state_dict was saved by {zo.get('optimizer')!r}, cannot load it into "
                f"{type(self).__name__}"
            )
        super().load_state_dict(state_dict)
        self._zo = copy.deepcopy(zo)
        self._config = self._zo["config"]
        self._checked_group = None  # the processes must agree again on where they resume


def _check_weight(weight: float | None) -> float:
    return 1.0 if weight is None else check_float("weight", weight, 0.0)


def _check_distinct(existing: Sequence[torch.Tensor], new: Sequence[torch.Tensor]) -> None:
    """Raise ValueError if a tensor of ``new`` is listed twice, or shares memory with another.

    Every listed tensor draws its own noise and gets its own update, so a tensor listed twice
    (or two views of one storage) would be perturbed and updated twice per step, along two
    different directions: silently wrong, never what the caller meant.
    """
    seen = {id(p): i for i, p in enumerate(existing)}
    for i, param in enumerate(new):
        if id(param) in seen:
            raise ValueError(
                f"parameter {i} of this param group (shape {tuple(param.shape)}) is already in "
                "the optimizer's parameters: each tensor may be listed once (remove the "
                "duplicate, e.g. a tied weight listed under both names)"
            )
        seen[id(param)] = len(seen)
    spans = []
    for index, param in enumerate([*existing, *new]):
        tensor = local_shard(param)[0]
        if tensor.numel() == 0 or tensor.device.type == "meta":
            continue
        try:
            ptr = tensor.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError, TypeError):  # tensors without a storage
            continue
        size = tensor.element_size()
        start = ptr + tensor.storage_offset() * size
        spans.append((tensor.device, start, start + tensor.numel() * size, index))
    spans.sort(key=lambda span: (str(span[0]), span[1]))
    for (dev_a, _, end_a, a), (dev_b, start_b, _, b) in itertools.pairwise(spans):
        if dev_a == dev_b and start_b < end_a:
            first, second = sorted((a, b))
            raise ValueError(
                f"parameters {first} and {second} (counting all param groups in order) share "
                "memory (views of one storage): each element would be perturbed and updated "
                "twice per step; pass each underlying tensor once"
            )


def _check_param(param: Any) -> None:
    if not isinstance(param, torch.Tensor):
        raise TypeError(f"params must be tensors, got {type(param).__name__}")
    if param.layout != torch.strided:
        raise TypeError(f"params must be dense (strided) tensors, got layout {param.layout}")
    if not param.is_floating_point():
        raise TypeError(f"params must be floating-point tensors, got dtype {param.dtype}")
    if not param.is_contiguous():
        raise ValueError(
            "params must be contiguous tensors (the noise is indexed by element position); "
            "call .contiguous() on the parameter's data first"
        )
