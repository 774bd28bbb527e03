"""Your own data as a task: a template over the columns of a CSV, JSON, JSONL or Parquet file
(or any ``datasets.Dataset``), with verbalizers for classification or a target column for
generation.

>>> from adamezo.tasks.custom import load_own_data
>>> data = load_own_data("reviews.csv", template="{text} It was",          # doctest: +SKIP
...                      label_column="label", verbalizers=["terrible", "great"])
>>> data.task.name, data.train[0].candidates                                # doctest: +SKIP
('reviews', (' terrible', ' great'))

Labels are either the verbalizers themselves (``"great"``) or their 0-based index (``1``).
A candidate (or generation target) gets a leading space unless the template ends in whitespace,
so ``"{text} It was"`` is scored with ``" great"``. Missing splits are cut from the train file by
the suite's seeded protocol: with no dev file dev is cut from train; with no test file test is cut
from train too; every cut is disjoint from the others. The shuffles follow the seed alone, not the
task's name or the file's, so the same rows under another file name give the same split.
"""

from __future__ import annotations

import csv
import os
import string
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adamezo.tasks.base import Example, Record, Task, split_files
from adamezo.tasks.sampling import TaskData, checked_sizes, seeded_order

# datasets' loader for each file suffix.
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
SPLIT_NAMES = ("train", "dev", "test")


class OwnDataError(ValueError):
    """A file or dataset of the user's that cannot be turned into examples (names file, row and
    column)."""


def template_fields(template: str) -> list[str]:
    """The column names a ``str.format`` template reads, in order (ValueError if malformed)."""
    if not isinstance(template, str) or not template:
        raise ValueError(f"template must be a non-empty str.format pattern, got {template!r}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"template {template!r} is not a str.format pattern: {error}") from None
    fields = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        # "{text!r}" and "{row[0]}" are not plain column names: keep templates simple.
        if not name or not name.replace("_", "a").replace(" ", "a").replace("-", "a").isalnum():
            raise ValueError(
                f"template {template!r}: field {{{name}}} must name a column, e.g. {{text}}"
            )
        if name not in fields:
            fields.append(name)
    if not fields:
        raise ValueError(f"template {template!r} reads no column: add one, e.g. '{{text}}'")
    return fields


class CustomTask(Task):
    """A task built from a template over a table's columns (see the module docstring)."""

    n_dev = 500
    files = split_files("", "")  # no files of its own: rows come from the user

    def __init__(
        self,
        name: str,
        template: str,
        *,
        label_column: str | None = None,
        verbalizers: Sequence[str] | None = None,
        target_column: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"task name must be a non-empty string, got {name!r}")
        self.fields = template_fields(template)
        if (label_column is None) == (target_column is None):
            raise ValueError(
                "give label_column with verbalizers (classification) or target_column "
                "(generation), not both and not neither"
            )
        if label_column is not None:
            if isinstance(verbalizers, str) or not verbalizers or len(verbalizers) < 2:
                raise ValueError(
                    f"verbalizers must list at least two candidate words, got {verbalizers!r}"
                )
            words = [str(v).strip() for v in verbalizers]
            if any(not w for w in words) or len(set(words)) != len(words):
                raise ValueError(f"verbalizers must be distinct and non-empty, got {verbalizers!r}")
            self.kind = "classification"  # type: ignore[misc]
            self.metric = "accuracy"  # type: ignore[misc]
        else:
            if verbalizers:
                raise ValueError("verbalizers go with label_column (classification), not target")
            words = []
            self.kind = "generation"  # type: ignore[misc]
            self.metric = "f1"  # type: ignore[misc]
        self.name = name.strip()  # type: ignore[misc]
        self.prompt_format = template  # type: ignore[misc]
        self.label_column = label_column
        self.target_column = target_column
        # The continuation follows the prompt's text: a space unless the template ends in one.
        self.space = "" if template[-1].isspace() else " "
        self.words = tuple(words)
        self.verbalizers = tuple(self.space + w for w in words)  # type: ignore[misc]
        self.continuation_format = "" if label_column else self.space + "{" + target_column + "}"  # type: ignore[misc,operator]

    def __repr__(self) -> str:
        return f"<CustomTask {self.name}: {self.kind}, {self.metric}>"

    @property
    def columns(self) -> list[str]:
        """Every column the task reads."""
        extra = self.label_column or self.target_column
        return [*self.fields, *([extra] if extra not in self.fields else [])]

    def build(self, record: Record) -> Example:
        values = {}
        for column in self.fields:
            value = record[column]
            if is_empty(value, blank=False):
                raise ValueError(f"column {column!r} is empty")
            values[column] = str(value)
        prompt = self.prompt_format.format(**values)
        if self.label_column is not None:
            label = record[self.label_column]
            if is_empty(label, blank=True):
                raise ValueError(f"column {self.label_column!r} is empty")
            return Example(prompt, self.verbalizers, self.label_of(label), row=dict(record))
        target = record[self.target_column]
        answers = [target] if isinstance(target, str) else target
        if (
            not isinstance(answers, list | tuple)
            or not answers
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise ValueError(
                f"column {self.target_column!r} must hold a non-empty answer (or a list of "
                f"them), got {target!r}"
            )
        answers = [a.strip() for a in answers]
        return Example(
            prompt,
            (),
            answers=tuple(answers),
            target=self.space + answers[0] + "\n",
            row=dict(record),
        )

    def label_of(self, value: Any) -> int:
        """The candidate index of a label: a verbalizer word, or its 0-based index."""
        if isinstance(value, str) and value.strip() in self.words:
            return self.words.index(value.strip())
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.words):
            return value
        raise ValueError(
            f"label {value!r} in column {self.label_column!r} is not among the verbalizers "
            f"{list(self.words)} (nor an index 0..{len(self.words) - 1})"
        )


def is_empty(value: Any, *, blank: bool) -> bool:
    """Whether a cell holds nothing: None, NaN, or (with ``blank``) only whitespace."""
    if value is None or (isinstance(value, float) and value != value):
        return True
    return blank and isinstance(value, str) and not value.strip()


def check_csv_header(path: Path, delimiter: str) -> None:
    """OwnDataError unless the CSV's header names each column once and a row follows it
    (``datasets`` would rename a second ``text`` to ``text.1`` and call a header-only file
    "no data")."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = csv.reader(f, delimiter=delimiter)
            header = next(records, [])
            has_row = any(any(cell.strip() for cell in record) for record in records)
    except (UnicodeDecodeError, csv.Error):
        return  # not plain UTF-8 CSV: datasets reports what it makes of it
    seen = set()
    for column in header:
        if column in seen:
            raise OwnDataError(
                f"{path}: the header names column {column!r} twice; give each column its own name"
            )
        seen.add(column)
    if header and not has_row:
        raise OwnDataError(f"{path}: the file holds no rows, only the header {header}")


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a CSV/TSV, JSON, JSONL or Parquet file, read through ``datasets``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise OwnDataError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use one of {sorted(FORMATS)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise OwnDataError(f"{path}: the file is empty")
    import datasets

    options: dict[str, Any] = {"delimiter": "\t"} if suffix == ".tsv" else {}
    if FORMATS[suffix] == "csv":
        check_csv_header(path, options.get("delimiter", ","))
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        # A private cache: nothing lingers in ~/.cache, and an edited file is never served stale.
        with tempfile.TemporaryDirectory(prefix="adamezo-data-") as cache:
            table = datasets.load_dataset(
                FORMATS[suffix],
                data_files=str(path),
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **options,
            )
            rows = table.to_list()
    except Exception as error:  # datasets wraps parser failures in its own exception types
        ours = isinstance(error, ValueError | TypeError | KeyError | OSError)
        if not ours and not type(error).__module__.startswith(("datasets", "pyarrow", "pandas")):
            raise
        if "corresponds to no data" in str(error):  # datasets' words for a file without rows
            raise OwnDataError(f"{path}: the file holds no rows") from error
        raise OwnDataError(f"{path}: cannot be read as {FORMATS[suffix]}: {error}") from error
    finally:
        if bars:
            datasets.utils.logging.enable_progress_bar()
    if not rows:
        raise OwnDataError(f"{path}: the file holds no rows")
    return rows


def build_examples(
    task: CustomTask, rows: Iterable[Mapping[str, Any]], source: str
) -> list[Example]:
    """One Example per row; an OwnDataError names ``source``, the 1-based row and the column."""
    rows = [dict(row) for row in rows]
    if not rows:
        raise OwnDataError(f"{source}: no rows")
    columns = list(rows[0])
    missing = [c for c in task.columns if c not in columns]
    if missing:
        raise OwnDataError(
            f"{source}: no column {missing[0]!r} (read by the template or as label/target); "
            f"the columns are {columns}"
        )
    examples = []
    for number, row in enumerate(rows, 1):
        try:
            examples.append(task.build(row))
        except (KeyError, ValueError, TypeError) as error:
            reason = f"missing column {error}" if isinstance(error, KeyError) else str(error)
            raise OwnDataError(f"{source}, row {number}: {reason}") from error
    return examples


def task_data_from_rows(
    task: CustomTask,
    train: Iterable[Mapping[str, Any]],
    dev: Iterable[Mapping[str, Any]] | None = None,
    test: Iterable[Mapping[str, Any]] | None = None,
    *,
    seed: int = 0,
    n_train: int = 1000,
    n_dev: int | None = None,
    n_test: int = 1000,
    sources: Mapping[str, str] | None = None,
) -> TaskData:
    """Sample ``TaskData`` from rows (dicts, or a ``datasets.Dataset``) of each split.

    Given splits are sampled (seeded) to their size; missing ones are cut from train first
    (test, then dev, then train: disjoint). ``sources`` names each split's origin in errors.
    """
    if not isinstance(task, CustomTask):
        raise TypeError(f"task must be a CustomTask, got {type(task).__name__}")
    seed, n_train, n_dev, n_test = checked_sizes(task, seed, n_train, n_dev, n_test)
    sources = dict(sources or {})
    pools = _example_pools(task, {"train": train, "dev": dev, "test": test}, sources)
    wanted = {"train": n_train, "dev": n_dev, "test": n_test}
    chosen, notes = _sample_and_cut(task, seed, pools, wanted)
    pool = pools["train"]
    if len(chosen["train"]) < n_train:
        notes.append(
            f"{task.name}: {len(pool)} train rows leave {len(chosen['train'])} for training, "
            f"fewer than n_train={n_train}"
        )
    if n_train > 0 and not chosen["train"]:
        raise ValueError(
            f"{task.name}: no training examples left after cutting dev and test from the "
            f"{len(pool)} train rows; add a dev/test file or lower n_dev/n_test"
        )
    source = "; ".join(f"{split}: {where}" for split, where in sources.items())
    available = {split: len(examples) for split, examples in pools.items()}
    return TaskData(
        chosen["train"], chosen["dev"], chosen["test"], notes, source, available, task=task
    )


def _example_pools(
    task: CustomTask,
    rows: Mapping[str, Iterable[Mapping[str, Any]] | None],
    sources: dict[str, str],
) -> dict[str, list[Example]]:
    """The examples of each split given rows; a split without a named source gets one here."""
    pools = {}
    for split, split_rows in rows.items():
        if split_rows is not None:
            where = sources.setdefault(split, f"{task.name} {split} rows")
            pools[split] = build_examples(task, split_rows, where)
    return pools


def _sample_and_cut(
    task: CustomTask, seed: int, pools: dict[str, list[Example]], wanted: dict[str, int]
) -> tuple[dict[str, list[Example]], list[str]]:
    """(examples per split, notes): a seeded sample of each given dev or test split, and each
    missing one (then train) cut from train, disjoint, in the order test, dev, train."""
    pool = pools["train"]
    # Seeded by the seed alone, not the task's name (which defaults to the file's stem): the
    # same rows under another file name or line ending give the same split.
    order = seeded_order(f"adamezo/own-data/{seed}/train", len(pool))
    start = 0
    chosen: dict[str, list[Example]] = {}
    notes = []
    for split in ("test", "dev", "train"):
        if split in pools and split != "train":
            own = pools[split]
            picks = seeded_order(f"adamezo/own-data/{seed}/{split}", len(own))
            chosen[split] = [own[i] for i in picks[: wanted[split]]]
            continue
        part = order[start : start + wanted[split]]
        start += len(part)
        chosen[split] = [pool[i] for i in part]
        if split != "train":
            notes.append(
                f"{task.name}: no {split} file: {split} is {len(part)} examples cut from train, "
                "disjoint from the training examples"
            )
    return chosen, notes


def load_own_data(
    train_file: str | os.PathLike,
    *,
    template: str,
    label_column: str | None = None,
    verbalizers: Sequence[str] | None = None,
    target_column: str | None = None,
    dev_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    task_name: str | None = None,
    seed: int = 0,
    n_train: int = 1000,
    n_dev: int | None = None,
    n_test: int = 1000,
) -> TaskData:
    """``TaskData`` (with ``.task``) from your own files; the task is named ``task_name`` or
    the train file's stem. Raises OwnDataError naming file, row and column for bad input."""
    task = CustomTask(
        task_name or Path(train_file).stem,
        template,
        label_column=label_column,
        verbalizers=verbalizers,
        target_column=target_column,
    )
    files = {"train": train_file, "dev": dev_file, "test": test_file}
    rows = {s: read_table(f) if f is not None else None for s, f in files.items()}
    return task_data_from_rows(
        task,
        rows["train"],  # type: ignore[arg-type]
        rows["dev"],
        rows["test"],
        seed=seed,
        n_train=n_train,
        n_dev=n_dev,
        n_test=n_test,
        sources={s: str(f) for s, f in files.items() if f is not None},
    )
