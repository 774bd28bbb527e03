"""Summarise toy runs per (function, optimizer): a Markdown table and a JSON record."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adamezo.toy.experiment import OPTIMIZERS, Run

FRACTION = 0.01
"""Progress is measured as the steps to reach 1% of the starting loss."""


@dataclass(frozen=True)
class Spread:
    """Median, minimum and maximum over seeds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        array = np.asarray(values, dtype=float)
        return cls(float(np.median(array)), float(array.min()), float(array.max()))


@dataclass(frozen=True)
class Summary:
    """One optimizer on one function, over its seeds."""

    function: str
    optimizer: str
    lr: float
    seeds: int
    final_loss: Spread
    steps_to_1pct: Spread
    """inf where a seed never reached 1% of the starting loss within the budget."""
    reached: int
    """How many seeds reached it."""
    length: Spread


def summarise(runs: Sequence[Run]) -> list[Summary]:
    """One :class:`Summary` per (function, optimizer), in the order the runs came."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.function, r.optimizer), []).append(r)
    summaries = []
    for (function, optimizer), group in groups.items():
        steps = [r.steps_to(FRACTION) for r in group]
        summaries.append(
            Summary(
                function=function,
                optimizer=optimizer,
                lr=group[0].lr,
                seeds=len(group),
                final_loss=Spread.of([r.final_loss for r in group]),
                steps_to_1pct=Spread.of([math.inf if s is None else s for s in steps]),
                reached=sum(s is not None for s in steps),
                length=Spread.of([r.length for r in group]),
            )
        )
    return summaries


def _steps(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


def markdown_table(summaries: Sequence[Summary]) -> str:
    """The results table: final loss and trajectory length as median [min, max] over seeds."""
    lines = [
        "| function | optimizer | lr | final loss, median [min, max] | steps to 1% of start, "
        "median [min, max] (seeds reaching) | trajectory length, median [min, max] |",
        "|---|---|---:|---|---|---|",
    ]
    for s in summaries:
        loss, steps, length = s.final_loss, s.steps_to_1pct, s.length
        lines.append(
            f"| {s.function} | {OPTIMIZERS[s.optimizer].label} | {s.lr:.3g} "
            f"| {loss.median:.3g} [{loss.low:.3g}, {loss.high:.3g}] "
            f"| {_steps(steps.median)} [{_steps(steps.low)}, {_steps(steps.high)}] "
            f"({s.reached}/{s.seeds}) "
            f"| {length.median:.3g} [{length.low:.3g}, {length.high:.3g}] |"
        )
    return "\n".join(lines) + "\n"


def write_json(summaries: Sequence[Summary], path: Path, **settings: object) -> Path:
    """The summaries and the settings that produced them (inf written as null)."""

    def finite(value: object) -> object:
        if isinstance(value, float) and math.isinf(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        return value

    record = {"settings": settings, "results": [finite(asdict(s)) for s in summaries]}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path
