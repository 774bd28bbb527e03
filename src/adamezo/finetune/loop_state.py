"""What the training loop counts: steps, forward passes, early stopping, the best evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from adamezo.finetune.objective import EvalResult


@dataclass
class LoopState:
    """The loop's counters and early-stopping state; a checkpoint saves it whole."""

    step: int = 0
    best_dev_loss: float = math.inf
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    train_model_calls: int = 0
    eval_model_calls: int = 0
    first_order_passes: int = 0
    zero_shot: dict[str, Any] = field(default_factory=dict)
    best_eval: dict[str, Any] = field(default_factory=dict)

    def track_best(self, result: EvalResult, step: int, value: float | None = None) -> bool:
        """Count an evaluation for early stopping; whether ``value`` (default the dev loss; minus
        the dev score for another objective) is the lowest yet, which ``best_dev_loss`` keeps."""
        value = result.loss if value is None else value
        if value < self.best_dev_loss:
            self.best_dev_loss = value
            self.best_step = step
            self.evals_without_improvement = 0
            self.best_eval = result.as_dict("dev")
            return True
        self.evals_without_improvement += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def step_metrics(optimizer: Any, zo: bool, state: LoopState) -> dict[str, Any]:
    """The optimizer's figures of the last step, as a train record holds them."""
    if not zo:
        return {"forward_passes": state.first_order_passes}
    metrics = optimizer.metrics()
    return {
        "projected_grad": metrics["projected_grad"],
        "update_norm": metrics["update_norm"],
        "skipped_steps": metrics["skipped_steps"],
        "forward_passes": metrics["forward_passes"],
        # Every pass's loss in full precision: with the lr they determine the update, so the
        # log alone rebuilds the weights (adamezo.finetune.replay).
        "losses": list(optimizer.last_losses),
    }


def train_passes(optimizer: Any, zo: bool, state: LoopState) -> int:
    """Forward passes (closure evaluations, or backprop passes) spent on training so far."""
    return optimizer.forward_passes if zo else state.first_order_passes


def final_metrics(
    config: Any,
    state: LoopState,
    data: Any,
    counts: dict[str, Any],
    dev: dict[str, Any],
    test: dict[str, Any] | None,
) -> dict[str, Any]:
    """metrics.json: the run's settings in brief, its counts (``counts``: trainable parameters,
    training passes, seconds), zero-shot, final dev and test numbers, and where the data came
    from."""
    metrics: dict[str, Any] = {
        "task": config.task,
        "model": config.model,
        "optimizer": config.optimizer,
        "tuning": config.tuning,
        "steps": state.step,
        "stopped_early": state.stopped_early,
        "best_step": state.best_step,
        "trainable_parameters": counts["trainable"],
        "train_forward_passes": counts["passes"],
        "train_model_calls": state.train_model_calls,
        "eval_model_calls": state.eval_model_calls,
        "train_seconds": counts["seconds"],
        "zero_shot": state.zero_shot,
        "dev": dev,
        "data_source": data.source,
        "data_notes": list(data.notes),
    }
    if test is not None:
        metrics["test"] = test
    return metrics
