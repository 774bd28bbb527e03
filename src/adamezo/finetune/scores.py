"""Training objectives besides the loss: accuracy, F1, exact match or your own reward function,
as the number a zeroth-order step minimises (minus the score) and the dev metric it selects by.

A zeroth-order step needs only one number per forward pass, so it can follow a score that has no
gradient. ``objective`` picks it (see docs/objectives.md):

* ``loss`` (default): the task's cross-entropy (docs/algorithms.md §9);
* ``accuracy`` (classification, multiple choice): minus the mean over the batch of
  ``(correct + p_gold) / 2``, where ``correct`` is 1 when the argmax candidate is right and
  ``p_gold`` is the gold candidate's softmax probability over the candidates' scores. Plain
  accuracy moves in steps of 1/batch and almost never changes under a perturbation of size μ, so
  most steps would see two equal values and learn nothing; ``p_gold`` (the accuracy expected when
  the answer is drawn from the candidates' softmax) breaks the ties, and its value equals the
  accuracy wherever the model is confident;
* ``f1`` / ``exact-match`` (generation): minus the mean best-over-answers token F1 (exact match)
  of the greedy answers decoded under the perturbation;
* ``reward``: minus the mean of a user function ``reward(prompts, completions, rows)`` that returns
  one number per completion; ``samples`` completions per prompt (1: greedy; more: drawn from the
  softmax, with the same random draws in both passes of a step) are averaged per example.

Early stopping and keep-best follow the same score on the dev set (higher is better there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from adamezo._checks import check_choice, check_int
from adamezo.finetune.objective import EvalResult, TaskObjective
from adamezo.finetune.scoring import sample_tokens
from adamezo.finetune.settings import DEFAULT_MAX_NEW_TOKENS, OBJECTIVE_KINDS, OBJECTIVES
from adamezo.rewards import (
    RewardFn,
    RewardFunctionError,
    call_reward,
    function_name,
    load_reward,
)

__all__ = [
    "OBJECTIVES",
    "RewardFn",
    "RewardFunctionError",
    "TrainingObjective",
    "call_reward",
    "check_objective_kind",
    "function_name",
    "load_reward",
]

DEV_METRIC = {"accuracy": "accuracy", "f1": "f1", "exact-match": "exact_match", "reward": "reward"}


def check_objective_kind(objective: str, kind: str, task: str) -> None:
    """Raise ValueError unless ``objective`` can score a task of ``kind``."""
    if kind not in OBJECTIVE_KINDS[objective]:
        allowed = [o for o, kinds in OBJECTIVE_KINDS.items() if kind in kinds]
        raise ValueError(
            f"objective {objective!r} does not apply to task {task!r} ({kind}); "
            f"its objectives are {allowed}"
        )


def with_reward_function(config: Any, function: RewardFn | None) -> Any:
    """``config`` for a run given a reward function as a callable (``run_finetune(objective=)``):
    objective ``"reward"``, and ``reward`` the function's ``module:qualname``, which config.json
    records (a resumed run must be given the same function)."""
    if function is None:
        return config
    if not callable(function):
        raise TypeError(
            "objective must be a reward function (prompts, completions, rows) -> numbers, "
            f"got {type(function).__name__}"
        )
    if config.objective not in ("loss", "reward"):
        raise ValueError(
            f"objective: a reward function was passed, but config.objective is "
            f"{config.objective!r}; leave it 'loss' or set 'reward'"
        )
    name = function_name(function)
    if config.reward is not None and config.reward != name:
        raise ValueError(
            f"reward: config.reward is {config.reward!r} and a function {name} was passed too; "
            "give one"
        )
    return dataclasses.replace(config, objective="reward", reward=name)


def reward_function(config: Any, function: RewardFn | None) -> RewardFn | None:
    """The run's reward function: the callable passed, else the one ``config.reward`` names."""
    if config.objective != "reward":
        return None
    return function if function is not None else load_reward(config.reward)


class TrainingObjective:
    """What a run minimises on a training batch (:meth:`loss`) and selects its weights by on the
    dev set (:meth:`selection`, lower is better), for one of :data:`OBJECTIVES`."""

    def __init__(
        self,
        task: TaskObjective,
        objective: str = "loss",
        *,
        reward: RewardFn | None = None,
        reward_name: str | None = None,
        max_new_tokens: int | None = None,
        samples: int = 1,
    ) -> None:
        check_choice("objective", objective, OBJECTIVES)
        check_objective_kind(objective, task.kind, "this task")
        if (objective == "reward") != (reward is not None):
            raise ValueError("a reward function goes with objective 'reward', and only with it")
        self.task = task
        self.name = objective
        self.reward = reward
        self.reward_name = reward_name or (function_name(reward) if reward else None)
        self.max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        self.samples = check_int("samples", samples, 1)
        self.metric = DEV_METRIC.get(objective)

    @property
    def decodes_on_dev(self) -> bool:
        """Whether every dev evaluation must decode (F1 / exact match select the weights)."""
        return self.name in ("f1", "exact-match")

    def loss(self, examples: Sequence[Any]) -> torch.Tensor:
        """The batch's objective, lower is better: the loss, or minus the mean score."""
        if self.name == "loss":
            return self.task.loss(examples)
        if self.name == "accuracy":
            return -soft_accuracy(self.task, examples)
        if self.name == "reward":
            return -torch.tensor(self.rewards(examples, sampled=self.samples > 1).mean())
        answers = self.task.generate(examples, len(examples), self.max_new_tokens)
        return -torch.tensor(answer_scores(self.name, examples, answers).mean())

    def rewards(self, examples: Sequence[Any], *, sampled: bool, batch_size: int = 0) -> Any:
        """Each example's mean reward over its completions (a float64 array)."""
        import numpy as np

        samples = self.samples if sampled else 1
        pick = sample_tokens if sampled else None
        size = batch_size or len(examples)
        completions = [
            self.task.generate(examples, size, self.max_new_tokens, pick=pick)
            for _ in range(samples)
        ]
        flat = [c for i in range(len(examples)) for c in (s[i] for s in completions)]
        repeated = [ex for ex in examples for _ in range(samples)]
        values = call_reward(
            self.reward,  # type: ignore[arg-type]
            self.reward_name,  # type: ignore[arg-type]
            [ex.prompt for ex in repeated],
            flat,
            [example_row(ex) for ex in repeated],
        )
        return np.asarray(values, dtype=np.float64).reshape(len(examples), samples).mean(1)

    def annotate(self, result: EvalResult, examples: Sequence[Any], batch_size: int) -> EvalResult:
        """``result`` with the dev reward added (reward objective; greedy completions)."""
        if self.name == "reward":
            calls = self.task.runner.forward_calls
            with torch.no_grad():
                mean = self.rewards(examples, sampled=False, batch_size=batch_size).mean()
            result.metrics["reward"] = float(mean)
            result.forward_calls += self.task.runner.forward_calls - calls
        return result

    def selection(self, result: EvalResult) -> float:
        """What early stopping and keep-best minimise: the dev loss, or minus the dev score."""
        if self.metric is None:
            return result.loss
        return -float(result.metrics[self.metric])


def training_objective(config: Any, task: TaskObjective, reward: RewardFn | None):
    """The :class:`TrainingObjective` of a run (a resolved ``FinetuneConfig``) on ``task``."""
    return TrainingObjective(
        task,
        config.objective,
        reward=reward,
        reward_name=config.reward,
        max_new_tokens=config.max_new_tokens,
        samples=config.samples,
    )


def soft_accuracy(task: TaskObjective, examples: Sequence[Any]) -> torch.Tensor:
    """Mean over ``examples`` of (1[argmax candidate is right] + p_gold) / 2 (module docstring)."""
    values = []
    for example, score in zip(examples, task.scores(examples), strict=True):
        correct = getattr(example, "correct", ()) or (example.label,)
        right = float(int(score.argmax()) in correct)
        p_gold = torch.softmax(score.double(), dim=0)[list(correct)].sum()
        values.append((right + p_gold) / 2)
    return torch.stack(values).mean()


def answer_scores(objective: str, examples: Sequence[Any], answers: Sequence[str]) -> Any:
    """Per example, the best token F1 (``f1``) or exact match of its answer over its references."""
    import numpy as np

    from adamezo.tasks.metrics import best_over_references, exact_match, token_f1

    metric = token_f1 if objective == "f1" else exact_match
    return np.array(
        [
            best_over_references(metric, answer, example.answers)
            for example, answer in zip(examples, answers, strict=True)
        ],
        dtype=np.float64,
    )


def example_row(example: Any) -> dict[str, Any]:
    """What a reward function gets for an example: its source row (own data: the file's
    columns), else its fields (prompt, candidates, label, answers, target)."""
    row = getattr(example, "row", None)
    if row is not None:
        return dict(row)
    fields = ("prompt", "candidates", "label", "answers", "target")
    return {name: getattr(example, name, None) for name in fields}
