"""The published cells of an experiment: ``RESULTS/cells/<cell id>/`` with cell.json (what the
cell is), config.json, log.jsonl and metrics.json (its run's small files, the last written when
it finished), and what the report reads of them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from adamezo.experiments.cells import Cell, cell_from_json, cell_to_json, passes_per_step
from adamezo.finetune.records import LOG, EvalRecord, read_log

CELLS = "cells"
METRICS = "metrics.json"
LOG_FILES = ("config.json", "log.jsonl", METRICS)
"""A run's small files, the ones published."""
MATCHED_FIELDS = frozenset(({f.name for f in fields(Cell)} - {"tags"}) | {"id", "finished"})
"""The record fields :func:`matching` compares: the cell's own, its id and whether it finished."""


def cell_dir(results: Path, cell_id: str) -> Path:
    """Where a cell's files are published."""
    return results / CELLS / cell_id


def finished(results: Path, cell: Cell | str) -> bool:
    """Whether the cell (or the cell of that id) has finished: its metrics.json is published."""
    return (cell_dir(results, cell if isinstance(cell, str) else cell.id) / METRICS).exists()


def remember(cell: Cell, results: Path) -> None:
    """Record the cell's definition next to its files, so the report can rebuild it; the tags of
    an earlier cell.json are kept (a cell may belong to several tables). An unchanged file is
    not written again."""
    target = cell_dir(results, cell.id)
    target.mkdir(parents=True, exist_ok=True)
    path = target / "cell.json"
    earlier = json.loads(path.read_text()).get("tags", []) if path.exists() else []
    text = json.dumps(cell_to_json(cell, earlier), indent=1) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def all_known_cells(results: Path) -> list[Cell]:
    """Every cell with a published cell.json, in the order of their ids."""
    paths = sorted((results / CELLS).glob("*/cell.json"))
    return [cell_from_json(json.loads(path.read_text())) for path in paths]


def best_dev_loss(run_dir: Path) -> float:
    """The lowest dev loss the run's log holds after training began, inf if none: the zero-shot
    evaluation (step 0) is left out, so an lr that never improves on it cannot tie with one that
    does."""
    records = read_log(run_dir / LOG, cut_tail_ok=True)
    losses = [
        r.dev_loss
        for r in records
        if isinstance(r, EvalRecord) and r.step > 0 and r.dev_loss is not None
    ]
    return min(losses) if losses else math.inf


def cell_record(cell: Cell, run_dir: Path) -> dict[str, Any]:
    """What a report needs of one cell, read from its (published) run directory alone: its
    fields, ``id``, ``steps``, ``finished``; once finished, ``metrics`` and ``best_dev_loss``."""
    record = {"id": cell.id, **asdict(cell), "steps": cell.steps, "finished": False}
    metrics_path = run_dir / METRICS
    if not metrics_path.exists():
        return record
    record.update(finished=True, metrics=json.loads(metrics_path.read_text()))
    record["best_dev_loss"] = best_dev_loss(run_dir)
    return record


def read_records(cells: Iterable[Cell], results: Path) -> list[dict[str, Any]]:
    """:func:`cell_record` of each cell, from its published directory."""
    return [cell_record(cell, cell_dir(results, cell.id)) for cell in cells]


def known_records(results: Path) -> list[dict[str, Any]]:
    """The records of every published cell."""
    return read_records(all_known_cells(results), results)


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


def finished_records(results: Path) -> list[dict[str, Any]]:
    """Every finished cell's record, with its dev-loss ``curve`` [(training forward passes, dev
    loss)] and ``update_norms`` [(step, ‖θ_{t+1} − θ_t‖)] from its log."""
    records = []
    for record in known_records(results):
        if not record["finished"]:
            continue
        run_dir = cell_dir(results, record["id"])
        log = [r.to_json() for r in read_log(run_dir / LOG, cut_tail_ok=True)]
        passes = passes_per_step(record["optimizer"])
        record["curve"] = [
            (e["step"] * passes, e["dev_loss"])
            for e in log
            if e.get("type") == "eval" and e.get("dev_loss") is not None
        ]
        record["update_norms"] = [
            (e["step"], e["update_norm"])
            for e in log
            if e.get("type") == "train" and e.get("update_norm") is not None
        ]
        records.append(record)
    return records
