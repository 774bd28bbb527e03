"""What a cell's record is (the dict a report reads of one published cell) and the filter every
reader of records goes through (:func:`matching`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from adamezo.experiments.cells import Cell

MATCHED_FIELDS = frozenset(({f.name for f in fields(Cell)} - {"tags"}) | {"id", "finished"})
"""The record fields :func:`matching` compares: the cell's own, its id and whether it finished."""


def matching(
    records: Iterable[dict[str, Any]], tag: str | None = None, **values: Any
) -> list[dict[str, Any]]:
    """The records, in their order, tagged ``tag`` (whatever their tags if None) whose fields
    equal ``values``: ``matching(records, tag="lr", task="sst2", seed=0)``. A field must be one of
    :data:`MATCHED_FIELDS` (a misspelt one would match nothing, silently); an optional field a
    record leaves out counts as None."""
    unknown = sorted(set(values) - MATCHED_FIELDS)
    if unknown:
        raise TypeError(
            f"matching: unknown record fields {unknown}; known: {sorted(MATCHED_FIELDS)}"
        )
    return [
        r
        for r in records
        if (tag is None or tag in r.get("tags", ()))
        and all(r.get(name) == value for name, value in values.items())
    ]
