"""The MeZO data protocol: seeded, disjoint train/dev/test samples of a task's original splits.

Train and dev are disjoint samples of the original train split, test a sample of the original
validation split (1000 / 500 / 1000 by default; dev 100 for CB and COPA). Where one split is
missing, the other is cut into disjoint test, dev and train parts. Each split is shuffled by its own
generator seeded with (task, seed, split), so the same seed gives the same examples in the same
order, and the dev set does not change with the number of training examples.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from adamezo._checks import check_int
from adamezo.tasks.base import SPLITS, Example, Split, Task
from adamezo.tasks.registry import get_task
from adamezo.tasks.sources import (
    DataNotFoundError,
    SplitData,
    missing_data_message,
    read_available_split,
    resolve_data_dir,
)


@dataclass
class TaskData:
    """The sampled examples of one task, with notes on anything that departs from the protocol."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    notes: list[str]
    source: str  # where the data came from: a path, or "huggingface:<dataset>[<split>]"
    available: dict[str, int] = field(default_factory=dict)  # sizes of the original splits
    task: Task | None = None  # the task the examples belong to, where it is not a built-in one


Samples = tuple[list[Example], list[Example], list[Example]]
"""(train, dev, test) examples."""


def seeded_order(key: str, count: int) -> list[int]:
    """A permutation of ``range(count)`` that depends on ``key`` alone."""
    order = list(range(count))
    # A str seed is hashed with SHA-512, so the stream is the same in every process and version.
    random.Random(key).shuffle(order)
    return order


def shuffled(task: Task, seed: int, split: Split, count: int) -> list[int]:
    """A seeded permutation of ``range(count)`` for one split of one built-in task."""
    return seeded_order(f"adamezo/{task.name}/{seed}/{split}", count)


def _take(order: list[int], start: int, wanted: int) -> tuple[list[int], int]:
    part = order[start : start + wanted]
    return part, start + len(part)


def _pick(pool: list[Example], order: list[int]) -> list[Example]:
    return [pool[i] for i in order]


def checked_sizes(
    task: Task, seed: int, n_train: int, n_dev: int | None, n_test: int
) -> tuple[int, int, int, int]:
    """(seed, n_train, n_dev, n_test), each checked; ``n_dev=None`` is the task's dev size."""
    seed = check_int("seed", seed)
    n_train = check_int("n_train", n_train, 0)
    n_dev = task.n_dev if n_dev is None else check_int("n_dev", n_dev, 0)
    return seed, n_train, n_dev, check_int("n_test", n_test, 0)


def load_task_data(
    task: str | Task,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    n_train: int = 1000,
    n_dev: int | None = None,
    n_test: int = 1000,
) -> TaskData:
    """Sample a task's train, dev and test examples per the MeZO protocol.

    ``n_dev=None`` means the task's protocol size (500; 100 for CB and COPA). Raises
    ``DataNotFoundError`` naming every path tried when neither split can be found, and
    ``MalformedDataError`` (a ValueError) naming file and line for a bad record.
    """
    task = get_task(task)
    seed, n_train, n_dev, n_test = checked_sizes(task, seed, n_train, n_dev, n_test)
    tried: list[str] = []
    found = _read_splits(task, resolve_data_dir(data_dir), tried)
    notes: list[str] = []
    available = {split: len(data.examples) for split, data in found.items()}
    sizes = _Sizes(n_train, n_dev, n_test)
    if len(found) == 2:
        train, dev, test = _sample_both_splits(task, seed, found, sizes, notes)
    else:
        train, dev, test = _cut_the_one_split(task, seed, found, sizes, notes, tried)
    for name, part, wanted in (("train", train, n_train), ("test", test, n_test)):
        if wanted > 0 and not part:
            raise ValueError(
                f"{task.name}: no {name} examples left after sampling ({available} available, "
                f"n_train={n_train}, n_dev={n_dev}, n_test={n_test}); lower n_dev or add data"
            )
    return TaskData(train, dev, test, notes, _describe_sources(found), available)


def _read_splits(task: Task, root: Path | None, tried: list[str]) -> dict[Split, SplitData]:
    """Every split of the task that can be read, each path tried added to ``tried``;
    DataNotFoundError when there is none."""
    found: dict[Split, SplitData] = {}
    for split in SPLITS:
        data = read_available_split(task, split, root, tried)
        if data is not None:
            found[split] = data
    if not found:
        raise DataNotFoundError(missing_data_message(task, tried))
    return found


class _Sizes(NamedTuple):
    """How many examples each split is to get."""

    train: int
    dev: int
    test: int


def _sample_both_splits(
    task: Task, seed: int, found: dict[Split, SplitData], sizes: _Sizes, notes: list[str]
) -> Samples:
    """(train, dev, test): train and dev from the train split, test from the validation one."""
    pool = found["train"].examples
    dev_order, train_order = _split_train(task, seed, pool, sizes.train, sizes.dev, notes)
    test_pool = found["validation"].examples
    test_order = shuffled(task, seed, "validation", len(test_pool))[: sizes.test]
    if len(test_pool) < sizes.test:
        notes.append(
            f"{task.name}: the validation split has {len(test_pool)} examples, fewer than "
            f"n_test={sizes.test}: test uses all {len(test_pool)}"
        )
    return _pick(pool, train_order), _pick(pool, dev_order), _pick(test_pool, test_order)


def _cut_the_one_split(
    task: Task,
    seed: int,
    found: dict[Split, SplitData],
    sizes: _Sizes,
    notes: list[str],
    tried: list[str],
) -> Samples:
    """(train, dev, test): disjoint test, dev and train parts of the only split there is."""
    ((present, data),) = found.items()
    missing = "validation" if present == "train" else "train"
    pool = data.examples
    order = shuffled(task, seed, present, len(pool))
    test_order, start = _take(order, 0, sizes.test)
    dev_order, start = _take(order, start, sizes.dev)
    train_order, _ = _take(order, start, sizes.train)
    notes.append(
        f"{task.name} has no {missing} split here (tried: {'; '.join(tried)}): train, dev and "
        f"test are disjoint samples of its {present} split ({len(pool)} examples: "
        f"{len(train_order)} train, {len(dev_order)} dev, {len(test_order)} test); results "
        f"are not comparable with those on the full {present} split"
    )
    return _pick(pool, train_order), _pick(pool, dev_order), _pick(pool, test_order)


def _split_train(
    task: Task, seed: int, pool: list[Example], n_train: int, n_dev: int, notes: list[str]
) -> tuple[list[int], list[int]]:
    """Dev then train indices from the train split; dev keeps its size when the split is short."""
    order = shuffled(task, seed, "train", len(pool))
    dev_order, start = _take(order, 0, n_dev)
    train_order, _ = _take(order, start, n_train)
    if len(pool) < n_train + n_dev:
        notes.append(
            f"{task.name}: the train split has {len(pool)} examples, fewer than n_train + n_dev "
            f"= {n_train + n_dev}: dev takes {len(dev_order)}, train the remaining "
            f"{len(train_order)}"
        )
    return dev_order, train_order


def _describe_sources(found: dict[Split, SplitData]) -> str:
    """One file, one directory holding both files, or each split's source."""
    sources = [data.source for data in found.values()]
    if len(set(sources)) == 1:
        return sources[0]
    local = [Path(s) for s in sources if not s.startswith("huggingface:")]
    if len(local) == len(sources) and len({p.parent for p in local}) == 1:
        return str(local[0].parent)
    return "; ".join(f"{split}: {data.source}" for split, data in found.items())
