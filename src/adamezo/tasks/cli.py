"""The ``adamezo tasks`` sub-command: list the tasks and where each one's data would be read."""

from __future__ import annotations

import argparse
import os
import site
import sysconfig
import textwrap

from adamezo.tasks.base import SPLITS, Split, Task
from adamezo.tasks.registry import get_task, list_tasks
from adamezo.tasks.sources import DATA_ENV, resolve_data_dir

WIDTH = 100
"""The columns every line of ``adamezo tasks`` fits in."""


def split_status(task: Task, split: Split, data_dir: str | os.PathLike | None) -> str:
    """The local file for ``split`` (relative to ``data_dir`` when inside it), or what would be
    needed instead. No network is touched."""
    path = task.locate(split, data_dir)
    if split == "validation" and path is not None and path == task.locate("train", data_dir):
        return "(same file, fixed split)"
    if path is not None:
        inside = data_dir is not None and path.is_relative_to(data_dir)
        return str(path.relative_to(data_dir)) if inside else str(path)
    if task.hub is not None:
        return f"not local; needs {task.hub.describe(split)}"
    return "missing"


def status_table(data_dir: str | os.PathLike | None) -> list[list[str]]:
    """One row per task: name, kind, metric, and the status of each split."""
    rows = [["task", "kind", "metric", *SPLITS]]
    for name in list_tasks():
        task = get_task(name)
        rows.append(
            [name, task.kind, task.metric, *(split_status(task, s, data_dir) for s in SPLITS)]
        )
    return rows


def short_path(status: str) -> str:
    """A file inside the Python installation's packages shown from ``<site-packages>`` on (an
    absolute path there is mostly the installation's own prefix)."""
    for root in sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"]}, key=len)[::-1]:
        if status.startswith(root + os.sep):
            return "<site-packages>" + status[len(root) :]
    return status


def status_lines(rows: list[list[str]]) -> list[str]:
    """Per task a heading (name, kind, metric) and one indented line per split, each within
    :data:`WIDTH` columns (a status too long for its split's line goes on the next)."""
    width = max(len(split) for split in SPLITS)
    lines = []
    for name, kind, metric, *statuses in rows[1:]:
        lines.append(f"{name} ({kind}, {metric})")
        for split, status in zip(SPLITS, statuses, strict=True):
            line = f"  {split:<{width}}  {short_path(status)}"
            if len(line) > WIDTH:
                line = f"  {split}\n    {short_path(status)}"
            lines.append(line)
    return lines


def run(args: argparse.Namespace) -> int:
    if args.templates:
        for name in list_tasks():
            task = get_task(name)
            line = f"{name}: {task.template}" + (f"  ({task.note})" if task.note else "")
            print(textwrap.fill(line, WIDTH, subsequent_indent="    ", break_long_words=False))
        return 0
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None:
        print(f"data directory: none (pass --data-dir or set {DATA_ENV})")
    else:
        origin = "--data-dir" if args.data_dir is not None else DATA_ENV
        exists = "" if data_dir.is_dir() else " (does not exist)"
        print(f"data directory: {data_dir} (from {origin}){exists}")
    print("\n".join(status_lines(status_table(data_dir))))
    note = (
        "A task with one split missing samples disjoint train/dev/test parts of the other. "
        "Hub sources are used only when the hub is reachable. Prompts: --templates."
    )
    print(textwrap.fill(note, WIDTH))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adamezo tasks`` to the command line."""
    parser = subparsers.add_parser(
        "tasks",
        help="list the fine-tuning tasks and whether their data is found",
        description=(
            "List every task with its kind (classification, multiple_choice, generation), its "
            "metric, and for each original split the local file that would be read, or the "
            "Hugging Face dataset it would need. Does not touch the network."
        ),
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=(
            f"directory holding <task>/<split files> in the original formats "
            f"(default: ${DATA_ENV}, if set)"
        ),
    )
    parser.add_argument(
        "--templates",
        action="store_true",
        help="print each task's prompt template (candidates in braces) instead of the data table",
    )
    parser.set_defaults(func=run)
