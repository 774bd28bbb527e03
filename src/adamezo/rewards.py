"""User reward functions: found by name (``module:function`` or ``path/to/file.py:function``),
called as ``reward(prompts, completions, rows)`` and checked to return one finite number per
completion, with errors that name the function and the completion."""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RewardFn = Callable[[list[str], list[str], list[dict[str, Any]]], Sequence[Any]]
"""``reward(prompts, completions, rows) -> one number per completion`` (higher is better)."""


class RewardFunctionError(ValueError):
    """The user's reward function raised or returned something that is not one finite number per
    completion; the step was abandoned with the weights as they were."""


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
