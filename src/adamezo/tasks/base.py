"""What a task is: the Example it produces, and the Task class that reads a split into Examples.

A task turns raw records (rows of the original public files, or rows of its Hugging Face dataset)
into ``Example`` objects through one template. Subclasses say where their files are, how a file is
parsed into records (``records_from_file``), how a hub row becomes the same kind of record
(``record_from_hub``), and how a record becomes an Example (``build``). Everything else — locating
files, turning parse failures into errors that name the file and line — lives here, once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

Split = Literal["train", "validation"]
Kind = Literal["classification", "multiple_choice", "generation"]
Metric = Literal["accuracy", "f1"]
SPLITS: tuple[Split, ...] = ("train", "validation")

# A record is the task-level dict a template reads; its location names where it came from
# ("line 12", "data[3].paragraphs[0].qas[5]", "row 7") for error messages.
Record = dict[str, Any]
Located = tuple[str, Record]


@dataclass(frozen=True)
class Example:
    """One prompt with its candidates (classification, multiple choice) or its target (generation).

    ``prompt + candidates[i]`` is the full text of candidate i, and ``prompt + target`` the full
    text to train on; separating spaces and newlines belong to the continuation, as they follow the
    prompt in the original text. ``correct`` lists every candidate index that counts as right
    (ReCoRD can have several); it defaults to ``(label,)``. ``row`` (own data only) keeps the
    row the example was built from.
    """

    prompt: str
    candidates: tuple[str, ...]
    label: int | None = None
    answers: tuple[str, ...] = ()
    target: str | None = None
    correct: tuple[int, ...] = field(default=(), compare=True)
    row: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """The source row (your own data: the file's columns), which reward functions read."""

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a str, got {type(self.prompt).__name__}")
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "answers", tuple(self.answers))
        if self.label is not None:
            if not 0 <= self.label < len(self.candidates):
                raise ValueError(
                    f"label must be in [0, {len(self.candidates) - 1}], got {self.label!r}"
                )
            correct = tuple(self.correct) or (self.label,)
            if self.label not in correct or not all(0 <= i < len(self.candidates) for i in correct):
                raise ValueError(f"correct must index candidates and include label, got {correct}")
            object.__setattr__(self, "correct", correct)
        elif self.correct:
            raise ValueError("correct needs a label")

    def is_correct(self, index: int) -> bool:
        """Whether choosing candidate ``index`` is right."""
        return index in self.correct


@dataclass(frozen=True)
class HubSpec:
    """Where a task lives on the Hugging Face hub: ``load_dataset(path, config)[splits[split]]``."""

    path: str
    config: str | None = None
    splits: Mapping[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation"}
    )

    def describe(self, split: Split) -> str:
        name = f"{self.path}/{self.config}" if self.config else self.path
        return f"huggingface:{name}[{self.splits[split]}]"


@dataclass(frozen=True)
class HubSource:
    """Read a split from the hub through ``load(spec, split) -> iterable of row dicts``."""

    load: Callable[[HubSpec, Split], Iterable[Mapping[str, Any]]]


def split_files(train: str, validation: str) -> Mapping[Split, str]:
    """A read-only map from split to file name."""
    return MappingProxyType({"train": train, "validation": validation})


class Task:
    """One task of the suite: its template, its data files, and its protocol defaults."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    metric: ClassVar[Metric]
    files: ClassVar[Mapping[Split, str]]  # file names inside <data_dir>/<name>/
    hub: ClassVar[HubSpec | None] = None
    n_dev: ClassVar[int] = 500  # the protocol's dev size (CB and COPA use 100)
    # The template, in one place for both the code and the docs: ``prompt_format`` is a
    # str.format pattern over the record's (prepared) fields; classification candidates are
    # ``verbalizers`` in label order; other kinds give their continuation's pattern in
    # ``continuation_format``; ``note`` says how fields are prepared.
    prompt_format: ClassVar[str]
    verbalizers: ClassVar[tuple[str, ...]] = ()
    continuation_format: ClassVar[str] = ""
    note: ClassVar[str] = ""

    def __repr__(self) -> str:
        return f"<Task {self.name}: {self.kind}, {self.metric}>"

    @property
    def template(self) -> str:
        """The prompt with candidates in braces (newlines written ``\\n``), as the docs show it;
        ``note`` says how the fields are prepared."""
        text = self.prompt_format.replace("\n", "\\n")
        if self.verbalizers:
            space = " " if self.verbalizers[0].startswith(" ") else ""
            text += space + "{" + ", ".join(v.strip() for v in self.verbalizers) + "}"
        if self.continuation_format:
            text += " → '" + self.continuation_format.replace("\n", "\\n") + "'"
        return text

    def classify(self, label: int, **fields: str) -> Example:
        """The classification example of ``fields`` with gold candidate ``label``."""
        return Example(self.prompt_format.format(**fields), self.verbalizers, label)

    # -- where the data is -------------------------------------------------------------------
    def candidate_paths(self, split: Split, data_dir: str | os.PathLike | None) -> list[Path]:
        """The files that could hold ``split``, in the order they are tried."""
        if data_dir is None:
            return []
        return [Path(data_dir) / self.name / self.files[split]]

    def locate(self, split: Split, data_dir: str | os.PathLike | None) -> Path | None:
        """The first existing file for ``split``, or None."""
        return next((p for p in self.candidate_paths(split, data_dir) if p.is_file()), None)

    # -- reading -----------------------------------------------------------------------------
    def read_split(self, split: Split, source: str | os.PathLike | HubSource) -> list[Example]:
        """All examples of ``split`` from a data directory, a file, or the hub.

        A directory is the data root holding ``<task>/<file>``. Malformed records raise
        ValueError naming the file (or hub dataset) and the line (or row) of the record.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if isinstance(source, HubSource):
            if self.hub is None:
                raise ValueError(f"task {self.name!r} has no Hugging Face dataset")
            rows = source.load(self.hub, split)  # load errors are the caller's, not a bad row

            def hub_rows() -> Iterator[Located]:
                for i, row in enumerate(rows):
                    yield f"row {i}", dict(row)

            return self._build_all(self.hub.describe(split), hub_rows, self.record_from_hub)
        path = Path(source)
        if path.is_dir():
            path = path / self.name / self.files[split]
        if not path.is_file():
            raise FileNotFoundError(f"{self.name} {split} file not found: {path}")
        return self._build_all(str(path), lambda: self.records_from_file(path, split))

    def _build_all(
        self,
        where: str,
        records: Callable[[], Iterable[Located]],
        convert: Callable[[Record], Record] | None = None,
    ) -> list[Example]:
        """Build every record, turning any failure into ``MalformedDataError`` at its location."""
        examples = []
        location = "start of data"
        kind = "row" if convert is not None else "record"
        try:
            for located in records():
                location, record = located  # the except clauses report the last location
                example = self.build(convert(record) if convert else record)
                if example is not None:
                    examples.append(example)
        except MalformedRecord as error:
            raise MalformedDataError(
                f"{where}, {error.location}: malformed {self.name} data: {error.reason}"
            ) from None
        except _RECORD_ERRORS as error:
            raise MalformedDataError(
                f"{where}, {location}: malformed {self.name} {kind}: {_reason(error)}"
            ) from error
        return examples

    # -- per-task hooks ----------------------------------------------------------------------
    def install_hint(self) -> str | None:
        """How to get this task's data besides a data directory or the hub, if there is a way."""
        return None

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        """Parse a file of the original format into located records."""
        raise NotImplementedError

    def record_from_hub(self, row: Record) -> Record:
        """Turn a hub row into the record ``build`` reads (the identity unless overridden)."""
        return row

    def build(self, record: Record) -> Example | None:
        """The Example of one record (None to skip a record the task does not use)."""
        raise NotImplementedError


class MalformedDataError(ValueError):
    """A data file (or hub row) that cannot be turned into examples; names the file and line."""


class MalformedRecord(Exception):
    """A record that cannot be parsed, raised by readers that know its location themselves."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


_RECORD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _reason(error: Exception) -> str:
    return f"missing field {error}" if isinstance(error, KeyError) else str(error)


@contextmanager
def malformed_at(location: str) -> Iterator[None]:
    """Turn a lookup or type failure while unpacking a nested record into ``MalformedRecord``."""
    try:
        yield
    except _RECORD_ERRORS as error:
        raise MalformedRecord(location, _reason(error)) from error


def text_field(record: Record, key: str, *, allow_empty: bool = False) -> str:
    """``record[key]`` as a string, non-empty unless allowed, else an error naming the field."""
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"field {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"field {key!r} is empty")
    return value


def label_index(value: Any, labels: Mapping[Any, int], key: str = "label") -> int:
    """The candidate index of a raw label value, else ValueError listing the allowed values."""
    # bool is an int subclass: keep True/False from matching 1/0 keys and vice versa.
    for raw, index in labels.items():
        if raw == value and type(raw) is type(value):
            return index
    allowed = ", ".join(repr(k) for k in labels)
    raise ValueError(f"field {key!r} must be one of {allowed}, got {value!r}")
