"""``ZOTrainer``: a ``transformers.Trainer`` whose training step is a zeroth-order step.

Only the training step changes. The Trainer's own loop still draws batches, calls callbacks,
logs (to every ``report_to`` backend), evaluates, schedules the learning rate and saves and
restores checkpoints; the optimizer's ``state_dict`` carries its zeroth-order state (seed, step
counters, projected-gradient history), so a run resumed from a checkpoint continues exactly.

A zeroth-order step needs the batch (as a closure), which the Trainer only hands to
``training_step``. So ``training_step`` runs the whole step, and the Trainer loop's own
closure-less ``optimizer.step()`` that follows is answered by a thin adapter that checks a step
was taken and does nothing more.

Half precision: ``fp16=True`` and ``bf16=True`` run the forward passes under autocast as usual,
but no loss scaling is used: there is no backward pass whose gradients could underflow, and a
GradScaler (which accelerate sets up for fp16 on a GPU) would refuse a step it did not scale.
The weights stay in their own dtype (float32 master weights), as with ``adamezo finetune
--mixed-precision``. accelerate autocasts fp16 only off the CPU: ``fp16=True`` on the CPU runs
the passes in float32 (``bf16=True`` autocasts there too).
FSDP2: a model sharded with ``fully_shard`` (by the caller or by the Trainer's FSDP settings)
is prepared with :func:`adamezo.distributed.prepare_fsdp` before its first step.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from transformers import Trainer

from adamezo.distributed import prepare_fsdp
from adamezo.integrations.accumulation import accumulated_loss
from adamezo.integrations.reward import TrainerReward
from adamezo.optim import ZerothOrderOptimizer
from adamezo.optim.registry import zeroth_order_classes

ZO_OPTIMIZERS: dict[str, type[ZerothOrderOptimizer]] = zeroth_order_classes()
"""The registry's zeroth-order optimizers that need nothing beyond lr and the shared options."""


class TrainingStepOptimizer(torch.optim.Optimizer):
    """What the Trainer loop sees as its optimizer: a zeroth-order optimizer whose step already
    ran inside ``training_step``. Param groups, state and ``state_dict`` are the wrapped ones, so
    lr schedulers and checkpointing act on the real optimizer.
    """

    def __init__(self, optimizer: ZerothOrderOptimizer) -> None:
        # Deliberately no super().__init__: like accelerate's AcceleratedOptimizer, this object
        # shares the wrapped optimizer's param groups and state instead of holding its own.
        self.optimizer = optimizer
        self._pending = False

    @property
    def param_groups(self):  # type: ignore[override]
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value) -> None:
        self.optimizer.param_groups = value

    @property
    def state(self):  # type: ignore[override]
        return self.optimizer.state

    @state.setter
    def state(self, value) -> None:
        self.optimizer.state = value

    @property
    def defaults(self):  # type: ignore[override]
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, value) -> None:
        self.optimizer.defaults = value

    def zo_step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        loss = self.optimizer.step(closure)
        self._pending = True
        return loss

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> None:  # type: ignore[override]
        if closure is not None:
            self.zo_step(closure)
            return
        if not self._pending:
            raise RuntimeError(
                "ZOTrainer: optimizer.step() was called without a preceding training_step; the "
                "zeroth-order step needs the batch, so it runs inside training_step"
            )
        self._pending = False

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to clear: zeroth-order steps compute no gradients."""

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def metrics(self) -> dict[str, Any]:
        return self.optimizer.metrics()

    def __repr__(self) -> str:
        return f"TrainingStepOptimizer({self.optimizer!r})"


class ZOTrainer(Trainer):
    """``transformers.Trainer`` that trains with a zeroth-order optimizer: two forward passes per
    step (three for HiZOO), no backward pass, no gradients in memory.

    Args:
        zo_optimizer: ``"adamezo"`` (default), ``"mezo"``, ``"zo-adam"``, ``"meazo"``,
            ``"hizoo"``, or a :class:`~adamezo.ZerothOrderOptimizer` subclass. Ignored when an
            optimizer instance is passed through ``optimizers=(optimizer, scheduler)``.
        zo_kwargs: extra constructor arguments, e.g. ``{"perturbation_scale": 1e-3,
            "betas": (0.7, 0.9), "horizon": 10}``. ``lr``, ``weight_decay`` and ``seed`` come
            from the ``TrainingArguments`` unless given here.
        objective: a reward function ``(prompts, completions, rows) -> one number per
            example``: each step then minimises minus the mean reward of the batch's greedy
            completions instead of ``compute_loss`` (:mod:`adamezo.integrations.reward`; needs
            ``processing_class=tokenizer``). Evaluation still reports the loss.
        max_new_tokens: tokens decoded per completion with ``objective`` (default 50).

    Every other argument is the Trainer's. ``gradient_accumulation_steps`` N makes each step
    one zeroth-order step over N micro-batches together (both passes see all of them: the step
    of one N times larger batch, up to float rounding, in the memory of one micro-batch); the
    logs carry ``projected_grad`` and
    ``forward_passes`` instead of a gradient norm.
    """

    def __init__(
        self,
        *args: Any,
        zo_optimizer: str | type[ZerothOrderOptimizer] = "adamezo",
        zo_kwargs: dict[str, Any] | None = None,
        objective: Callable[..., Any] | None = None,
        max_new_tokens: int = 50,
        **kwargs: Any,
    ) -> None:
        if isinstance(zo_optimizer, str):
            if zo_optimizer not in ZO_OPTIMIZERS:
                raise ValueError(
                    f"zo_optimizer must be one of {sorted(ZO_OPTIMIZERS)} or a "
                    f"ZerothOrderOptimizer subclass, got {zo_optimizer!r}"
                )
            zo_optimizer = ZO_OPTIMIZERS[zo_optimizer]
        elif not (
            isinstance(zo_optimizer, type) and issubclass(zo_optimizer, ZerothOrderOptimizer)
        ):
            raise TypeError(
                "zo_optimizer must be a name or a ZerothOrderOptimizer subclass, "
                f"got {zo_optimizer!r}"
            )
        self.zo_optimizer_cls = zo_optimizer
        self.zo_kwargs = dict(zo_kwargs or {})
        super().__init__(*args, **kwargs)
        self.zo_reward = (
            None
            if objective is None
            else TrainerReward(objective, self.processing_class, max_new_tokens)
        )
        self._zo: TrainingStepOptimizer | None = None
        self._micro_batches: list[dict[str, Any]] = []
        self._prepared: set[int] = set()

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """The zeroth-order optimizer over the trainable parameters, wrapped for the loop."""
        # No loss scaling: a GradScaler's step asserts unless a backward pass was scaled first.
        self.accelerator.scaler = None
        self._prepare_sharded(model or self.model)
        if self.optimizer is None:
            params = [p for p in (model or self.model).parameters() if p.requires_grad]
            options = {
                "lr": self.args.learning_rate,
                "weight_decay": self.args.weight_decay,
                "seed": self.args.seed,
                **self.zo_kwargs,
            }
            self.optimizer = TrainingStepOptimizer(self.zo_optimizer_cls(params, **options))
        elif isinstance(self.optimizer, ZerothOrderOptimizer):
            self.optimizer = TrainingStepOptimizer(self.optimizer)
        elif not isinstance(self.optimizer, TrainingStepOptimizer):
            raise TypeError(
                "ZOTrainer needs a zeroth-order optimizer, got "
                f"{type(self.optimizer).__name__}; use transformers.Trainer for first-order ones"
            )
        self._zo = self.optimizer
        return self.optimizer

    def training_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """One zeroth-order step on ``inputs``; returns the mean of the ± losses. Under gradient
        accumulation, the micro-batches before the last return 0 and the last one's step sees
        them all (:mod:`adamezo.integrations.accumulation`)."""
        model.train()
        self._prepare_sharded(model)
        self._micro_batches.append(self._prepare_inputs(inputs))
        if not self.accelerator.gradient_state.sync_gradients:  # more micro-batches to come
            return torch.zeros((), device=self.args.device)
        micro_batches, self._micro_batches = self._micro_batches, []
        normalised = getattr(self, "loss_is_scaled_for_ga", None)
        if self.zo_reward is not None:  # a mean reward per micro-batch: weight them by rows
            normalised = False
        elif normalised is None:  # the Trainer's own rule (Trainer.training_step)
            normalised = (
                self.model_accepts_loss_kwargs and num_items_in_batch is not None
            ) or self.compute_loss_func is not None

        def loss(inputs: dict[str, Any]) -> torch.Tensor:
            if self.zo_reward is not None:
                return self.zo_reward.loss(model, inputs)
            # A copy: compute_loss pops "labels" under label smoothing, and each pass needs them.
            return self.compute_loss(model, dict(inputs), num_items_in_batch=num_items_in_batch)

        def closure() -> torch.Tensor:
            with self.compute_loss_context_manager():
                return accumulated_loss(loss, micro_batches, normalised)

        if self._zo is None:
            raise RuntimeError("ZOTrainer.training_step ran before create_optimizer")
        return self._zo.zo_step(closure).detach().to(self.args.device)

    def _prepare_sharded(self, model: torch.nn.Module) -> None:
        """Call prepare_fsdp once on a model that holds FSDP2 modules; without it the forward
        passes would reuse stale gathered weights (see adamezo.distributed.prepare_fsdp)."""
        fsdp = sys.modules.get("torch.distributed.fsdp")
        if fsdp is None or id(model) in self._prepared:
            return
        if any(isinstance(module, fsdp.FSDPModule) for module in model.modules()):
            prepare_fsdp(model)
        self._prepared.add(id(model))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's logging, with the zeroth-order step's numbers in place of grad_norm."""
        if self._zo is not None and "loss" in logs:
            logs.pop("grad_norm", None)
            metrics = self._zo.metrics()
            logs["projected_grad"] = metrics["projected_grad"]
            logs["forward_passes"] = metrics["forward_passes"]
        super().log(logs, start_time)
