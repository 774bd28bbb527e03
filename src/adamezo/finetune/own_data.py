"""Fine-tuning on your own files: the settings' checks, the task's name and the data's loading.

``FinetuneConfig(train_file=..., template=..., label_column=..., verbalizers=[...])`` (or
``target_column=...``) trains on a CSV/TSV, JSON, JSONL or Parquet file instead of a built-in
task; see :mod:`adamezo.tasks.custom` for the template, the labels and the split protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OWN_DATA_FIELDS = (
    "dev_file",
    "test_file",
    "template",
    "label_column",
    "verbalizers",
    "target_column",
    "task_name",
)


def validate_own_data(config: Any) -> None:
    """Raise ValueError naming the setting unless the own-data settings fit together; for a
    train file, also check its existence, type and template (reads no data)."""
    from adamezo.tasks.custom import FORMATS

    if config.train_file is None:
        given = [name for name in OWN_DATA_FIELDS if getattr(config, name) is not None]
        if given:
            raise ValueError(f"{given[0]}: goes with train_file (--train-file), which is not set")
        return
    if config.template is None:
        raise ValueError("template: train_file needs a template over its columns, e.g. '{text}'")
    if config.data_dir is not None:
        raise ValueError("data_dir: it holds built-in tasks' files; with train_file give none")
    if config.task not in ("sst2", own_task_name(config)):
        raise ValueError(
            f"task: {config.task!r} names a built-in task; name the task of train_file with "
            "task_name (--task-name)"
        )
    for name in ("train_file", "dev_file", "test_file"):
        path = getattr(config, name)
        if path is None:
            continue
        if Path(path).suffix.lower() not in FORMATS:
            raise ValueError(
                f"{name}: {str(path)!r} has type {Path(path).suffix or '(none)'!r}; "
                f"use one of {sorted(FORMATS)}"
            )
        if not Path(path).is_file():
            raise ValueError(f"{name}: file not found: {str(path)!r}")
    own_task(config)  # checks template, columns and verbalizers


def own_data_settings(config: Any) -> dict[str, Any] | None:
    """The own-data settings of a run (None for a built-in task), to read its files again."""
    if config.train_file is None:
        return None
    return {name: getattr(config, name) for name in ("train_file", *OWN_DATA_FIELDS)}


def own_task_name(config: Any) -> str:
    """``task_name``, else the train file's stem."""
    return config.task_name or Path(config.train_file).stem


def own_task(config: Any):
    """The :class:`~adamezo.tasks.custom.CustomTask` of the settings."""
    from adamezo.tasks.custom import CustomTask

    try:
        return CustomTask(
            own_task_name(config),
            config.template,
            label_column=config.label_column,
            verbalizers=config.verbalizers,
            target_column=config.target_column,
        )
    except ValueError as error:
        raise ValueError(f"train_file {str(config.train_file)!r}: {error}") from None


def load_own_config_data(config: Any):
    """(task, TaskData) of the settings' files."""
    from adamezo.tasks.custom import load_own_data

    data = load_own_data(
        config.train_file,
        template=config.template,
        label_column=config.label_column,
        verbalizers=config.verbalizers,
        target_column=config.target_column,
        dev_file=config.dev_file,
        test_file=config.test_file,
        task_name=own_task_name(config),
        seed=config.seed,
        n_train=config.n_train,
        n_dev=config.n_dev,
        n_test=config.n_test,
    )
    return data.task, data


def parse_verbalizers(text: str) -> list[str]:
    """``"no,yes"`` -> ``["no", "yes"]`` (the CLI's --verbalizers)."""
    words = [w.strip() for w in text.split(",")]
    if len(words) < 2 or not all(words):
        raise ValueError(f"--verbalizers takes two or more comma-separated words, got {text!r}")
    return words
