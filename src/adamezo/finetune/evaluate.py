"""Evaluate a model, zero-shot or fine-tuned, on a task's dev or test split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from adamezo._checks import check_choice, check_int
from adamezo.finetune.builder import build_run, survey_prompts
from adamezo.finetune.checkpoints import BEST, CHECKPOINT, TRAINABLE
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.files import RunFileError
from adamezo.finetune.models import check_model_available, check_model_name, load_model
from adamezo.finetune.objective import build_objective, load_data
from adamezo.finetune.own_data import own_data_settings
from adamezo.finetune.precision import autocast_dtype, check_mixed_precision
from adamezo.finetune.rundir import MODEL, RunDirectory
from adamezo.finetune.tuning import TunedModel, load_adapter

WEIGHTS = ("auto", "model", "best", "checkpoint")
"""Which weights of a run directory :func:`evaluate_run` evaluates; see there."""

Loader = Callable[[], tuple[TunedModel, Any]]


def evaluate_model(
    model: str,
    task: str,
    *,
    adapter: str | None = None,
    split: str = "dev",
    data_dir: str | None = None,
    n_dev: int | None = None,
    n_test: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    max_length: int | None = None,
    num_layers: int | None = None,
    dtype: str = "float32",
    device: str | None = None,
    progress: bool = True,
    own_data: dict[str, Any] | None = None,
    mixed_precision: str = "no",
) -> dict[str, Any]:
    """The task's loss and metric for ``model`` (plus a PEFT ``adapter`` directory, if given) on
    the ``split`` examples that a fine-tuning run with the same seed and sizes would use;
    ``mixed_precision`` bf16/fp16 runs the forward passes under autocast."""
    check_mixed_precision(mixed_precision, dtype=dtype, device=device, zeroth_order=True)
    check_model_available(model)

    def load() -> tuple[TunedModel, Any]:
        loaded, tokenizer = load_model(model, dtype=dtype, num_layers=num_layers)
        if adapter:
            return load_adapter(loaded, adapter), tokenizer
        return TunedModel("full", loaded, None, loaded), tokenizer

    result = _evaluate(
        load,
        task,
        split=split,
        data_dir=data_dir,
        n_dev=n_dev,
        n_test=n_test,
        seed=seed,
        own_data=own_data,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
        progress=progress,
        mixed_precision=mixed_precision,
    )
    return {"model": model, "adapter": adapter, **result}


RUN_FIXED = ("model", "task", "num_layers", "dtype")
"""What a run's weights are evaluated with as the run made them: :func:`evaluate_run` refuses
another value (its ``expect``), never ignores one."""


def _run_settings(config: FinetuneConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's evaluation settings, with the caller's ``overrides`` (those not None) on top."""
    settings: dict[str, Any] = {
        "data_dir": config.data_dir,
        "n_dev": config.n_dev,
        "n_test": config.n_test,
        "seed": config.seed,
        "max_length": config.max_length,
        # A run on one's own files evaluates on the same files, read again.
        "own_data": own_data_settings(config),
        "mixed_precision": config.mixed_precision,
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    check_mixed_precision(
        settings["mixed_precision"],
        dtype=config.dtype,
        device=settings.get("device"),
        zeroth_order=True,
    )
    return settings


def evaluate_run(
    run_dir: str,
    split: str = "dev",
    weights: str = "auto",
    *,
    expect: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Evaluate the weights of a fine-tuning run directory, with that run's settings.

    ``weights``: ``model`` is the exported final model or adapter (``model/``); ``best`` the
    trainable weights of the lowest dev loss so far (``best.safetensors``); ``checkpoint`` those
    of the last checkpoint. ``auto`` takes ``model/`` if the run exported it, else the weights the
    run ends (or would end) with: ``best`` when it keeps the best weights, else ``checkpoint``.
    So a run made with ``--no-save-model``, or still going, can be evaluated too. The result
    names the weights (``weights``, ``weights_path``).

    ``overrides`` (``seed``, ``max_length``, ``n_dev``, ``n_test``, ``data_dir``, ``batch_size``,
    ``device``, ``progress``) replace the run's values; ``expect`` holds settings the caller
    assumes of the run (:data:`RUN_FIXED`, and ``adapter``, which a run never takes): ValueError,
    before any model loads, when one is given (not None) and differs from the run's.
    """
    check_choice("weights", weights, WEIGHTS)
    path = Path(run_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(path)!r} is not a run directory (no config.json)")
    config = FinetuneConfig.from_dict(RunDirectory(path).read_config() or {})
    _check_expected(config, expect or {})
    kind, source = _run_weights(path, config, weights)
    settings = _run_settings(config, overrides)
    if kind == "model":
        full = config.tuning == "full"
        result = evaluate_model(
            str(source) if full else config.model,
            config.task,
            adapter=None if full else str(source),
            split=split,
            num_layers=None if full else config.num_layers,
            dtype=config.dtype,
            **settings,
        )
    else:
        load = _trained_weights_loader(config, source, settings.get("device"))
        check_model_name(config.model)
        result = {
            "model": config.model,
            "adapter": None,
            **_evaluate(load, config.task, split=split, **settings),
        }
    return {"run": str(path), "weights": kind, "weights_path": str(source), **result}


def _check_expected(config: FinetuneConfig, expect: dict[str, Any]) -> None:
    if expect.get("adapter") is not None:
        raise ValueError(
            f"--adapter {expect['adapter']!r} applies to --model: the run evaluates its own "
            "weights (choose them with --weights)"
        )
    for name in RUN_FIXED:
        given, own = expect.get(name), getattr(config, name)
        if given is not None and given != own:
            flag = "--" + name.replace("_", "-")
            raise ValueError(
                f"{flag} {given!r} contradicts the run, whose {name} is {own!r}: eval --run "
                f"evaluates the run's weights as the run made them; leave out {flag}, or "
                "evaluate a model with --model and --task instead of --run"
            )


def _trained_weights_loader(config: FinetuneConfig, source: Path, device: str | None) -> Loader:
    """Load the run's base model, tuned as the run tuned it, with the trainable weights in
    ``source`` (a safetensors file: best or checkpoint weights)."""

    def load() -> tuple[TunedModel, Any]:
        from safetensors.torch import load_file

        target = replace(config, device=device or default_device(), device_map=None)
        parts = build_run(target, optimizer=False)
        try:
            trainable = load_file(str(source))
        except Exception as error:  # SafetensorError and OSError: cut short or garbled
            raise RunFileError(
                f"{source} cannot be read ({type(error).__name__}: {error}); evaluate other "
                "weights of the run (--weights), or rebuild them with `adamezo replay`"
            ) from error
        parts.tuned.load_trainable_state(trainable)
        return parts.tuned, parts.tokenizer

    return load


def default_device() -> str:
    """Where an evaluation runs unless told: the GPU if there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_weights(path: Path, config: FinetuneConfig, weights: str) -> tuple[str, Path]:
    candidates = {
        "model": path / MODEL,
        "best": path / BEST,
        "checkpoint": path / CHECKPOINT / TRAINABLE,
    }
    if weights == "auto":
        order = ["model", "best" if config.keep_best else "checkpoint", "checkpoint"]
        found = [kind for kind in order if candidates[kind].exists()]
        if not found:
            raise ValueError(
                f"run {str(path)!r} holds no weights yet: none of "
                f"{', '.join(str(p) for p in candidates.values())} exists"
            )
        weights = found[0]
    if not candidates[weights].exists():
        raise ValueError(
            f"run {str(path)!r} has no {weights} weights ({str(candidates[weights])!r} missing)"
        )
    return weights, candidates[weights]


def _evaluate(
    load: Loader,
    task: str,
    *,
    split: str,
    data_dir: str | None,
    n_dev: int | None,
    n_test: int,
    seed: int,
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | None = None,
    progress: bool = True,
    own_data: dict[str, Any] | None = None,
    mixed_precision: str = "no",
) -> dict[str, Any]:
    """Sample the split (before loading anything, so bad data fails fast), load, evaluate."""
    check_choice("split", split, ("dev", "test"))
    check_int("batch_size", batch_size, 1)
    config = FinetuneConfig(
        task=task,
        data_dir=data_dir,
        n_train=0,
        n_dev=n_dev,
        n_test=n_test,
        seed=seed,
        **(own_data or {}),
    )
    task_obj, data = load_data(config)
    examples = data.dev if split == "dev" else data.test
    if not examples:
        raise ValueError(f"the {split} split of {task!r} is empty")
    tuned, tokenizer = load()
    tuned.wrapped.to(device or default_device())
    autocast = autocast_dtype(mixed_precision)
    objective = build_objective(tuned, tokenizer, task_obj, max_length, autocast)
    survey_prompts(objective, {split: examples})
    result = objective.evaluate(examples, batch_size, progress=progress, label=split)
    return {
        "task": task,
        "split": split,
        "examples": len(examples),
        **result.as_dict(split),
        "data_source": data.source,
        "data_notes": list(data.notes),
    }
