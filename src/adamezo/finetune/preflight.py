"""What a run checks before it loads a model or writes a file, so that a bad setting, missing
data or a model that cannot run with the tuning mode fails at once, on every process alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from adamezo import distributed
from adamezo.collectives import active_group, check_agreement
from adamezo.finetune.builder import read_norm_schedule
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.models import check_model_available
from adamezo.finetune.objective import TaskObjective, load_data
from adamezo.finetune.scores import RewardFn, check_objective_kind, reward_function
from adamezo.finetune.tuning import check_tuning_offline
from adamezo.optim.registry import OptimizerEntry, optimizer_entry
from adamezo.tasks import get_task


@dataclass
class RunInputs:
    """What a run is checked to have before anything is loaded or written."""

    task: Any
    data: Any
    entry: OptimizerEntry
    norm_schedule: list[float] | None
    reward: RewardFn | None = None


def check_inputs(
    config: FinetuneConfig,
    model: torch.nn.Module | None,
    tokenizer: Any,
    data: Any,
    reward: RewardFn | None = None,
) -> RunInputs:
    """Raise for any bad input (model name, tuning mode, data, batch size, optimizer under
    data parallelism) before a model is loaded or a file written; the task and its data."""
    world_size = distributed.world_size()
    if (model is None) != (tokenizer is None):
        raise ValueError("pass model and tokenizer together, or neither")
    if model is None:
        check_model_available(config.model)
        check_tuning_offline(config.model, config.tuning, **config.tuning_settings())
    if data is None:
        task, data = load_data(config)
    else:
        task = data.task if getattr(data, "task", None) is not None else get_task(config.task)
    if len(data.train) < config.batch_size:
        raise ValueError(
            f"batch_size ({config.batch_size}) exceeds the {len(data.train)} training examples"
        )
    if not data.dev:
        raise ValueError("the dev split is empty: early stopping and evaluation need it")
    norm_schedule = read_norm_schedule(config.norm_schedule) if config.norm_schedule else None
    entry = optimizer_entry(config.optimizer)
    if world_size > 1 and not entry.zeroth_order:
        raise ValueError(
            f"optimizer {config.optimizer!r} needs gradients, which adamezo does not all-reduce; "
            "data-parallel runs (torchrun) take a zeroth-order optimizer"
        )
    if config.batch_size < world_size:
        raise ValueError(
            f"batch_size ({config.batch_size}) must be at least the number of processes "
            f"({world_size}), so that every process gets a shard"
        )
    check_objective_kind(config.objective, task.kind, config.task)
    if config.objective != "loss" and not entry.zeroth_order:
        raise ValueError(
            f"objective {config.objective!r} has no gradient: it needs a zeroth-order "
            f"optimizer, not {config.optimizer!r}"
        )
    return RunInputs(task, data, entry, norm_schedule, reward_function(config, reward))


def check_forward(objective: TaskObjective, mode: str, example: Any) -> None:
    """One forward pass on one example before the run directory is claimed, so that a model that
    cannot run with the tuning mode fails now, not after the run has started."""
    try:
        with torch.no_grad(), objective.runner.eval_mode():
            objective.loss([example])
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(
            f"tuning={mode!r}: {type(objective.runner.model).__name__} fails its first forward "
            f"pass ({type(error).__name__}: {error})"
        ) from error


def check_resumed_alike(step: int) -> None:
    """Raise on every process unless all resumed from the same step (one tiny all-reduce)."""
    group = active_group(None)
    if group is not None:
        check_agreement(
            group,
            {"step resumed from": step},
            advice="every process reads rank 0's checkpoint, so --output-dir must be on a "
            "filesystem that every machine shares",
        )
