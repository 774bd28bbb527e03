"""The task registry: every task of the suite by its lowercase name."""

from __future__ import annotations

from adamezo.tasks.base import Task
from adamezo.tasks.nli import CB, MNLI, RTE, SNLI
from adamezo.tasks.qa import DROP, SQuAD
from adamezo.tasks.rotten_tomatoes import RottenTomatoes
from adamezo.tasks.single_sentence import SST2, SST5, TREC
from adamezo.tasks.superglue import COPA, WSC, BoolQ, MultiRC, ReCoRD, WiC

# The MeZO OPT/LLaMA table, then its RoBERTa table, then the offline demo task.
_TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        SST2(),
        RTE(),
        CB(),
        BoolQ(),
        WSC(),
        WiC(),
        MultiRC(),
        COPA(),
        ReCoRD(),
        SQuAD(),
        DROP(),
        SST5(),
        SNLI(),
        MNLI(),
        TREC(),
        RottenTomatoes(),
    )
}


def list_tasks() -> list[str]:
    """The names of all tasks, in the order of the paper's tables (demo task last)."""
    return list(_TASKS)


def get_task(name: str | Task) -> Task:
    """The task called ``name`` (case-insensitive; "-" and "_" are interchangeable)."""
    if isinstance(name, Task):
        return name
    if not isinstance(name, str):
        raise TypeError(f"task must be a task name (str), got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    aliases = {"sst_2": "sst2", "sst_5": "sst5", "rt": "rotten_tomatoes"}
    key = aliases.get(key, key)
    if key not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(_TASKS)}")
    return _TASKS[key]
