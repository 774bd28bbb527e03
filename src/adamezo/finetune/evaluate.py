"""Evaluate a model, zero-shot or fine-tuned, on a task's dev or test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from adamezo._checks import check_choice, check_int
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import build_objective, load_data
from adamezo.finetune.models import check_model_name, load_model
from adamezo.finetune.rundir import MODEL
from adamezo.finetune.tuning import TunedModel, load_adapter


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
) -> dict[str, Any]:
    """The task's loss and metric for ``model`` (plus a PEFT ``adapter`` directory, if given) on
    the ``split`` examples that a fine-tuning run with the same seed and sizes would use."""
    check_choice("split", split, ("dev", "test"))
    check_int("batch_size", batch_size, 1)
    check_model_name(model)
    config = FinetuneConfig(
        model=model, task=task, data_dir=data_dir, n_train=0, n_dev=n_dev, n_test=n_test, seed=seed
    )
    task_obj, data = load_data(config)
    examples = data.dev if split == "dev" else data.test
    if not examples:
        raise ValueError(f"the {split} split of {task!r} is empty")
    loaded, tokenizer = load_model(model, dtype=dtype, num_layers=num_layers)
    loaded.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    tuned = load_adapter(loaded, adapter) if adapter else TunedModel("full", loaded, None, loaded)
    tuned.forward_model.eval()
    objective = build_objective(tuned, tokenizer, task_obj, max_length)
    result = objective.evaluate(examples, batch_size, progress=progress, label=split)
    return {
        "model": model,
        "adapter": adapter,
        "task": task,
        "split": split,
        "examples": len(examples),
        **result.as_dict(split),
    }


def evaluate_run(run_dir: str, split: str = "dev", **overrides: Any) -> dict[str, Any]:
    """Evaluate the final model of a fine-tuning run directory, with that run's settings."""
    path = Path(run_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(path)!r} is not a run directory (no config.json)")
    if not (path / MODEL).is_dir():
        raise ValueError(f"run {str(path)!r} saved no model ({MODEL}/ missing)")
    config = FinetuneConfig.from_dict(json.loads(config_file.read_text()))
    full = config.tuning == "full"
    settings = {
        "model": str(path / MODEL) if full else config.model,
        "adapter": None if full else str(path / MODEL),
        "task": config.task,
        "data_dir": config.data_dir,
        "n_dev": config.n_dev,
        "n_test": config.n_test,
        "seed": config.seed,
        "max_length": config.max_length,
        "num_layers": None if full else config.num_layers,
        "dtype": config.dtype,
        "split": split,
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return evaluate_model(**settings)
