"""Parsers for the original file formats (JSON lines, CSV/TSV, one JSON document) with line numbers.

Each reader yields ``(location, record)`` pairs and raises ``MalformedRecord`` naming the line when
the text itself cannot be parsed, so a bad file fails before any training starts.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from adamezo.tasks.base import MalformedRecord

# Long passages (SNLI parses, MultiRC paragraphs) exceed csv's default 128 KiB field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, transparently decompressing ``.bz2``."""
    if path.suffix == ".bz2":
        import bz2

        return bz2.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def text_lines(path: Path) -> Iterator[str]:
    """The file's lines, each decoded on its own, so that bytes that are not UTF-8 are reported
    at their line (a decoding text stream reports them at a buffer, far from the line)."""
    import bz2

    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise MalformedRecord(
                    f"line {number}", f"not UTF-8 text ({error.reason} at byte {error.start})"
                ) from None


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines file."""
    for number, line in enumerate(text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise MalformedRecord(f"line {number}", f"invalid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise MalformedRecord(
                f"line {number}", f"expected a JSON object, got {type(record).__name__}"
            )
        yield number, record


def table_rows(
    path: Path, *, delimiter: str, quoted: bool, columns: int | None = None
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` for each non-blank row of a CSV/TSV file, header included.

    ``quoted=False`` reads with ``csv.QUOTE_NONE`` (GLUE tsv files contain bare quote marks).
    ``columns``, if given, is the exact field count every row must have.
    """
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    reader = csv.reader(text_lines(path), delimiter=delimiter, quoting=quoting, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise MalformedRecord(f"line {start}", f"unreadable row: {error}") from None
        if fields and any(f.strip() for f in fields):
            if columns is not None and len(fields) != columns:
                raise MalformedRecord(
                    f"line {start}", f"expected {columns} columns, got {len(fields)}"
                )
            yield start, fields
        start = reader.line_num + 1


def header_records(
    path: Path,
    *,
    delimiter: str,
    quoted: bool,
    columns: Mapping[str, str],
    last_column: str | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """Records of a table with a header row: ``{key: row[header.index(column)]}`` per row.

    ``last_column`` names a key that takes the row's last field (GLUE NLI files put the gold label
    last, after a varying number of annotator labels, and some rows have fewer fields than the
    header). Every row needs the fields of the requested columns.
    """
    rows = table_rows(path, delimiter=delimiter, quoted=quoted)
    try:
        number, header = next(rows)
    except StopIteration:
        raise MalformedRecord("line 1", "file is empty (expected a header row)") from None
    missing = [column for column in columns.values() if column not in header]
    if missing:
        raise MalformedRecord(f"line {number}", f"header lacks column(s) {missing}: {header}")
    index = {key: header.index(column) for key, column in columns.items()}
    needed = max(index.values()) + 1
    for number, fields in rows:
        if len(fields) < needed:
            raise MalformedRecord(
                f"line {number}", f"expected at least {needed} columns, got {len(fields)}"
            )
        record = {key: fields[i] for key, i in index.items()}
        if last_column is not None:
            record[last_column] = fields[-1]
        yield f"line {number}", record


def plain_records(
    path: Path, *, keys: Sequence[str], delimiter: str = ","
) -> Iterator[tuple[str, dict[str, str]]]:
    """Records of a quoted CSV without header whose columns are ``keys``, in order."""
    for number, fields in table_rows(path, delimiter=delimiter, quoted=True, columns=len(keys)):
        yield f"line {number}", dict(zip(keys, fields, strict=True))


def jsonl_located(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``jsonl_records`` with locations spelled ``"line N"``."""
    for number, record in jsonl_records(path):
        yield f"line {number}", record


def json_document(path: Path) -> Any:
    """Parse a file holding one JSON document."""
    raw = path.read_bytes() if path.suffix != ".bz2" else _bz2_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise MalformedRecord(f"line {line}", f"not UTF-8 text ({error.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedRecord(
            f"line {error.lineno}, column {error.colno}", f"invalid JSON: {error.msg}"
        ) from None


def _bz2_bytes(path: Path) -> bytes:
    import bz2

    with bz2.open(path, "rb") as handle:
        return handle.read()
