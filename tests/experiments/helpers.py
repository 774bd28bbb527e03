"""Running tiny cells in a test: the published files' paths, and a worker over a fixed table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from adamezo.experiments.cells import Cell, Protocol
from adamezo.experiments.store import remember
from adamezo.experiments.workers import Place, run_cells

MEZO = Cell("sst2", "mezo", budget=12, lr=1e-3, tags=("main",))
ADAMEZO = Cell("sst2", "adamezo", budget=12, lr=1e-3, tags=("main",))


def place_in(root: Path, **kwargs) -> Place:
    """Run directories in ``root``/runs, published cells in ``root``/results."""
    return Place(runs=root / "runs", results=root / "results", **kwargs)


def run(cells: Sequence[Cell], protocol: Protocol, root: Path, **kwargs) -> list[Cell]:
    """One worker over the fixed table ``cells`` (remembered first, as a table's are)."""
    place = place_in(root)
    for cell in cells:
        remember(cell, place.results)
    return run_cells(lambda: list(cells), protocol, place, **kwargs)


def published(root: Path, cell: Cell, name: str = "metrics.json") -> Path:
    return root / "results" / "cells" / cell.id / name


def metrics(root: Path, cell: Cell) -> dict:
    return json.loads(published(root, cell).read_text())


def log_records(root: Path, cell: Cell) -> list[dict]:
    """The records of the cell's published log.jsonl."""
    text = published(root, cell, "log.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def train_records(root: Path, cell: Cell) -> list[tuple]:
    """(step, loss, projected gradient) of every train record of the cell's published log."""
    return [
        (r["step"], r["loss"], r["projected_grad"])
        for r in log_records(root, cell)
        if r["type"] == "train"
    ]
