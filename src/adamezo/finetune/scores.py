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
import importlib
import importlib.util
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from adamezo._checks import check_choice, check_int
from adamezo.finetune.objective import EvalResult, TaskObjective
from adamezo.finetune.scoring import sample_tokens

OBJECTIVES = ("loss", "accuracy", "f1", "exact-match", "reward")

# The task kinds each objective can score, and the dev metric that selects the weights.
OBJECTIVE_KINDS = {
    "loss": ("classification", "multiple_choice", "generation"),
    "accuracy": ("classification", "multiple_choice"),
    "f1": ("generation",),
    "exact-match": ("generation",),
    "reward": ("classification", "multiple_choice", "generation"),
}
DEV_METRIC = {"accuracy": "accuracy", "f1": "f1", "exact-match": "exact_match", "reward": "reward"}

DEFAULT_MAX_NEW_TOKENS = 50

RewardFn = Callable[[list[str], list[str], list[dict[str, Any]]], Sequence[Any]]
"""``reward(prompts, completions, rows) -> one number per completion`` (higher is better)."""


class RewardFunctionError(ValueError):
    """The user's reward function raised or returned something that is not one finite number per
    completion; the step was abandoned with the weights as they were."""


def check_objective_settings(config: Any) -> None:
    """Raise ValueError/TypeError naming the setting unless objective, reward, max_new_tokens
    and samples fit together (touches no file; a reward spec is imported at load time)."""
    check_choice("objective", config.objective, OBJECTIVES)
    if config.max_new_tokens is not None:
        check_int("max_new_tokens", config.max_new_tokens, 1)
    check_int("samples", config.samples, 1)
    if config.objective == "reward":
        if config.reward is None:
            raise ValueError(
                "objective 'reward' needs a reward function: --reward module:function "
                "(or path/to/file.py:function), or run_finetune(config, objective=function)"
            )
        if not isinstance(config.reward, str):
            raise TypeError(
                f"reward must be an import string 'module:function', got "
                f"{type(config.reward).__name__} (pass a function as run_finetune(objective=...))"
            )
    elif config.reward is not None:
        raise ValueError(f"reward: goes with objective 'reward', not {config.objective!r}")
    if config.samples != 1 and config.objective != "reward":
        raise ValueError(f"samples: goes with objective 'reward', not {config.objective!r}")
    if config.max_new_tokens is not None and config.objective in ("loss", "accuracy"):
        raise ValueError(
            "max_new_tokens: decoding goes with objective f1, exact-match or reward, "
            f"not {config.objective!r}"
        )


def check_objective_kind(objective: str, kind: str, task: str) -> None:
    """Raise ValueError unless ``objective`` can score a task of ``kind``."""
    if kind not in OBJECTIVE_KINDS[objective]:
        allowed = [o for o, kinds in OBJECTIVE_KINDS.items() if kind in kinds]
        raise ValueError(
            f"objective {objective!r} does not apply to task {task!r} ({kind}); "
            f"its objectives are {allowed}"
        )


def function_name(function: Callable[..., Any]) -> str:
    """``module:qualname`` of a function (how config.json records a reward passed as a callable)."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__name__
    return f"{module}:{name}"


def load_reward(spec: str) -> RewardFn:
    """The function ``spec`` names: ``package.module:function`` or ``path/to/file.py:function``."""
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"reward: {spec!r} is not 'module:function' or 'path/to/file.py:function'")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"reward: file not found: {module_name!r}")
            name = f"adamezo_reward_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except ValueError:
        raise
    except Exception as error:  # an import error or anything the module raises on import
        raise ValueError(
            f"reward: cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"reward: {module_name!r} has no function {attribute!r}")
    return function


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


def call_reward(
    reward: RewardFn,
    name: str,
    prompts: Sequence[str],
    completions: Sequence[str],
    rows: Sequence[dict[str, Any]],
) -> list[float]:
    """``reward(prompts, completions, rows)`` checked to be one finite number per completion;
    RewardFunctionError names the function and the offending completion's index."""
    prompts, rows = list(prompts), list(rows)
    try:
        values = reward(prompts, list(completions), rows)
    except Exception as error:
        raise RewardFunctionError(
            f"reward function {name} raised {type(error).__name__}: {error} "
            "(the step was abandoned; the weights are as they were)"
        ) from error
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if isinstance(values, str | bytes | dict) or not hasattr(values, "__len__"):
        raise RewardFunctionError(
            f"reward function {name} must return a sequence of numbers, one per completion, "
            f"got {type(values).__name__}"
        )
    values = list(values)
    if len(values) != len(completions):
        raise RewardFunctionError(
            f"reward function {name} returned {len(values)} values for {len(completions)} "
            "completions: it must return one number per completion"
        )
    out = []
    for index, value in enumerate(values):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, numbers.Real):
            raise RewardFunctionError(
                f"reward function {name}: example {index} got {type(value).__name__} "
                f"{value!r}, not a number (prompt {prompts[index][:60]!r})"
            )
        if not math.isfinite(float(value)):
            raise RewardFunctionError(
                f"reward function {name}: example {index} got {value!r}, not a finite number "
                f"(prompt {prompts[index][:60]!r}, completion {completions[index][:60]!r})"
            )
        out.append(float(value))
    return out
