"""Make a run's exported model or adapter usable elsewhere: named base model, model card, depth.

After ``TunedModel.export``, :func:`make_portable` rewrites a PEFT adapter's
``adapter_config.json`` so that it names the base model by its hub id where it has one (a built-in
model's ``hub_id``; a hub id as given; a local directory as its absolute path) with
``task_type: CAUSAL_LM``, so ``peft.AutoPeftModelForCausalLM.from_pretrained(adapter_dir)``
loads it on any machine that can fetch that base model. It writes ``training.json`` (how the model
was trained, and the depth it was trained at) and a model card (README.md). An adapter trained on
a truncated model (``num_layers``) records its depth, and :func:`check_adapter_depth` refuses to
apply it to a model of another depth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from adamezo.finetune.models import BUILTIN_MODELS
from adamezo.optim.registry import optimizer_entry

TRAINING = "training.json"
"""What an exported model or adapter records about its training run."""

CARD = "README.md"


def base_model_id(name: str) -> str:
    """How a saved adapter names its base model: a built-in's hub id, a local directory's
    absolute path, else ``name`` itself (a hub id)."""
    builtin = BUILTIN_MODELS.get(name)
    if builtin is not None:
        return builtin.hub_id or name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def training_record(config: Any, metrics: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """What ``training.json`` holds: the base model, the depth trained at and the run's numbers."""
    builtin = BUILTIN_MODELS.get(config.model)
    return {
        "library": "adamezo",
        "base_model": base_model_id(config.model),
        "model_setting": config.model,
        "base_weights_note": builtin.weights_note if builtin else None,
        "num_hidden_layers": int(model.config.num_hidden_layers),
        "truncated_to_num_layers": config.num_layers,
        "tuning": config.tuning,
        "task": config.task,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "lr_schedule": config.lr_schedule,
        "batch_size": config.batch_size,
        "perturbation_scale": config.perturbation_scale,
        "seed": config.seed,
        "step_budget": config.steps,
        "steps": metrics.get("steps"),
        "best_step": metrics.get("best_step"),
        "metrics": {k: metrics[k] for k in ("zero_shot", "dev", "test") if k in metrics},
    }


def make_portable(
    directory: Path, config: Any, metrics: dict[str, Any], model: nn.Module
) -> dict[str, Any]:
    """Rewrite the adapter config (LoRA / prefix), write training.json and the model card in
    ``directory`` (what ``TunedModel.export`` wrote); the training record."""
    directory = Path(directory)
    record = training_record(config, metrics, model)
    adapter_config = directory / "adapter_config.json"
    if adapter_config.is_file():
        data = json.loads(adapter_config.read_text())
        data["base_model_name_or_path"] = record["base_model"]
        data["task_type"] = "CAUSAL_LM"
        adapter_config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (directory / TRAINING).write_text(json.dumps(record, indent=2) + "\n")
    (directory / CARD).write_text(model_card(record))
    return record


def check_hub_repo(repo: str | None) -> None:
    """ValueError unless ``repo`` is None or a hub repository id, ``namespace/name``."""
    if repo is None:
        return
    import re

    if not isinstance(repo, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f"push_to_hub must be a hub repository id 'namespace/name', got {repo!r}")


def push_to_hub(directory: Path, repo: str) -> str:
    """Upload ``directory`` (a run's ``model/``: weights or adapter, tokenizer, training.json and
    the model card) to the hub repository ``repo``, created if missing; the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(directory), repo_id=repo, commit_message="adamezo fine-tune"
    )
    return str(getattr(info, "commit_url", info))


def check_adapter_depth(adapter_dir: str | Path, model: nn.Module) -> None:
    """Raise ValueError if the adapter in ``adapter_dir`` was trained on a model of another depth
    than ``model`` (its training.json says; adapters without one pass)."""
    path = Path(adapter_dir) / TRAINING
    if not path.is_file():
        return
    trained = json.loads(path.read_text()).get("num_hidden_layers")
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if trained is not None and depth is not None and int(trained) != int(depth):
        raise ValueError(
            f"adapter {str(adapter_dir)!r} was trained on the first {trained} transformer blocks "
            f"of its base model, but the model it is applied to has {depth}: load the base model "
            f"with num_layers={trained} (--num-layers {trained})"
        )


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for section, values in metrics.items():
        numbers = ", ".join(
            f"{name} {value:.4f}" for name, value in values.items() if isinstance(value, float)
        )
        lines.append(f"| {section.replace('_', '-')} | {numbers} |")
    return lines


def model_card(record: dict[str, Any]) -> str:
    """README.md of an exported model or adapter: metadata, how it was trained, how to load it."""
    adapter = record["tuning"] != "full"
    zo = optimizer_entry(record["optimizer"]).zeroth_order
    how = " (zeroth-order: forward passes only, no gradients)" if zo else ""
    loader = "peft.AutoPeftModelForCausalLM" if adapter else "transformers.AutoModelForCausalLM"
    lines = [
        "---",
        f"base_model: {record['base_model']}",
        f"library_name: {'peft' if adapter else 'transformers'}",
        "tags:",
        "- adamezo",
        "- zeroth-order",
        f"- {record['tuning']}",
        "---",
        "",
        f"# {record['task']}: {record['tuning']} tuning of {record['base_model']}",
        "",
        f"Trained with adamezo's `{record['optimizer']}` optimizer{how} on the task "
        f"`{record['task']}`.",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in ("optimizer", "lr", "lr_schedule", "batch_size", "perturbation_scale", "seed"):
        lines.append(f"| {key} | {record[key]} |")
    lines.append(f"| steps | {record['steps']} of {record['step_budget']} |")
    lines.append(f"| weights of step | {record['best_step']} |")
    lines += ["", "| evaluation | numbers |", "|---|---|", *_metric_lines(record["metrics"])]
    module, name = loader.split(".")
    lines += ["", "Load it with:", "", "```python", f"from {module} import {name}", ""]
    lines += [f'model = {name}.from_pretrained("PATH/TO/THIS/FOLDER")', "```", ""]
    if record["truncated_to_num_layers"] is not None:
        lines.append(
            f"Trained on the first {record['num_hidden_layers']} transformer blocks of the base "
            f"model only: load the base model cut to that depth (`adamezo eval --num-layers "
            f"{record['num_hidden_layers']}`); adamezo refuses to apply it to another depth."
        )
    if record["base_weights_note"]:
        lines.append(record["base_weights_note"])
    return "\n".join(lines).rstrip() + "\n"
