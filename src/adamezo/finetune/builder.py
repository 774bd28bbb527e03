"""The run builder: one recipe turns a ``FinetuneConfig`` into what a run, its replay and the
evaluation of its weights share (model, tokenizer, tuning, objective, optimizer, scheduler).

Building the same config twice gives the same weights and the same optimizer bit for bit: the
LoRA and prefix weights are drawn right after seeding with the run's seed. The SHA-256 of those
starting weights (:func:`fingerprint`) is the first record of a zeroth-order run's log, which a
replay checks before it re-applies the steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adamezo.finetune.machine import machine_of
from adamezo.finetune.models import load_model
from adamezo.finetune.objective import TaskObjective, build_objective
from adamezo.finetune.precision import autocast_dtype
from adamezo.finetune.records import LOG, StartRecord, TrainRecord, read_log
from adamezo.finetune.tuning import TunedModel, prepare_tuning
from adamezo.optim.registry import optimizer_entry


@dataclass
class RunParts:
    """What :func:`build_run` builds; the objective only for a task, the optimizer and scheduler
    only for training (or replaying)."""

    tuned: TunedModel
    tokenizer: Any
    objective: TaskObjective | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None


def build_run(
    config: Any,
    *,
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    task: Any = None,
    data: Any = None,
    optimizer: bool = True,
    norm_schedule: Sequence[float] | None = None,
) -> RunParts:
    """Build the parts of the run ``config`` (a resolved ``FinetuneConfig``) describes.

    ``model``/``tokenizer`` replace loading ``config.model``; the model goes to ``config.device``
    unless ``config.device_map`` dispatched it. ``task`` adds its objective, and ``data`` (its
    ``TaskData``) a warning with the count of each split's prompts the length limit cuts
    (:func:`survey_prompts`); ``optimizer`` adds the optimizer and lr scheduler
    (``norm_schedule``: MeZO-switch's norms, read from ``config.norm_schedule`` when not given).
    """
    if model is None:
        model, tokenizer = load_model(
            config.model,
            dtype=config.dtype,
            num_layers=config.num_layers,
            device=None if config.device_map else config.device,
            device_map=config.device_map,
        )
    if config.device_map is None:  # a dispatched model stays where accelerate put it
        model.to(config.device)
    # LoRA and prefix weights start random: seed them, whatever ran before in this process.
    torch.manual_seed(config.seed)
    parts = RunParts(prepare_tuning(model, config.tuning, **config.tuning_settings()), tokenizer)
    if task is not None:
        autocast = autocast_dtype(config.mixed_precision)
        parts.objective = build_objective(parts.tuned, tokenizer, task, config.max_length, autocast)
        if data is not None:
            splits = {"train": data.train, "dev": data.dev, "test": data.test}
            survey_prompts(parts.objective, splits)
    if optimizer:
        if norm_schedule is None and config.norm_schedule:
            norm_schedule = read_norm_schedule(config.norm_schedule)
        parts.optimizer = build_optimizer(config, parts.tuned, norm_schedule)
        parts.scheduler = build_scheduler(parts.optimizer, config.lr_schedule, config.steps)
    return parts


def survey_prompts(objective: TaskObjective, splits: dict[str, Sequence[Any]]) -> None:
    """Where data meets the encoder: count, per split, the prompts the length limit cuts (each
    loses tokens from its start), before any is cut; the first split with any warns, once."""
    for what, examples in splits.items():
        objective.encoder.survey(examples, what)


def build_optimizer(
    config: Any, tuned: Any, norm_schedule: Sequence[float] | None = None
) -> torch.optim.Optimizer:
    """The optimizer a run (a resolved ``FinetuneConfig``) trains ``tuned`` with."""
    return optimizer_entry(config.optimizer).build(
        list(tuned.param_groups(exclude_bias_norm=config.weight_decay_exclude_bias_norm)),
        lr=config.lr,
        weight_decay=config.weight_decay,
        betas=config.betas,
        perturbation_scale=config.perturbation_scale,
        seed=config.seed,
        kernel=config.kernel,
        perturbation=config.perturbation,
        norm_schedule=None if norm_schedule is None else list(norm_schedule),
        **config.optimizer_options(),
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The lr schedule over the step budget: constant, linear decay to 0, or cosine."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def read_norm_schedule(path: str) -> list[float]:
    """The update norms an AdaMeZO run logged, in step order (MeZO-switch follows them)."""
    file = Path(path)
    if file.is_dir():
        file = file / LOG
    if not file.is_file():
        raise ValueError(f"norm_schedule: no log file at {str(file)!r}")
    norms = []
    for record in read_log(file):
        if isinstance(record, TrainRecord) and record.update_norm is not None:
            norms.append(float(record.update_norm))
        elif isinstance(record, TrainRecord):
            raise ValueError(f"norm_schedule: step {record.step} of {file} has no update_norm")
    if not norms:
        raise ValueError(f"norm_schedule: {file} holds no train records with update_norm")
    return norms


def fingerprint(tuned: Any) -> str:
    """SHA-256 over every parameter of the model being tuned (names, dtypes, shapes, bytes,
    whether trained): what a replay checks that it starts from the run's own base weights."""
    named = tuned.wrapped.named_parameters()
    return _sha256((name, param, f"|{param.requires_grad}") for name, param in named)


def trainable_sha256(tuned: Any) -> str:
    """SHA-256 over the trainable tensors (``tuned.named_trainable()``: names, dtypes, shapes,
    bytes): what a run's end record holds of its final and best weights."""
    return _sha256((name, tensor, "") for name, tensor in tuned.named_trainable())


def _sha256(named: Iterable[tuple[str, torch.Tensor, str]]) -> str:
    digest = hashlib.sha256()
    for name, tensor, tag in named:
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}{tag}\n".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def start_record(tuned: Any, optimizer: Any) -> StartRecord:
    """A zeroth-order run's first log record: what replay needs besides the train records, and
    the machine the run's losses come from."""
    machine = machine_of(tensor for _name, tensor in tuned.named_trainable())
    return StartRecord(fingerprint(tuned), list(optimizer.passes), machine=machine)
