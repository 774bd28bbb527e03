"""An experiment's cells as trials of a shared Optuna study: any number of workers (processes, or
machines with one database) run its tables together, no cell twice, and a cell whose worker died
is taken over by the next worker and resumed from its run directory's checkpoint.

The queue is :mod:`adamezo.finetune.trial_queue`, the lr sweep's: a cell is enqueued (its
definition in the trial's user attributes) just before a worker pops one, so each worker asks its
table again after every cell (the lr choice and the grids' growth depend on what finished). What
is needed comes from the published files, not the study: a cell whose metrics.json is published
is finished, whatever the study holds, so the cells finished before the study existed stay
finished. A running cell sends a heartbeat; one silent for the grace period is failed and queued
again (Optuna's retry), and the worker that takes it resumes its run directory bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from adamezo.experiments.cells import ZERO_SHOT, Cell, Protocol, cell_from_json, cell_to_json
from adamezo.experiments.runner import how, run_cell
from adamezo.experiments.store import cell_dir, cell_record, finished, remember
from adamezo.finetune.trial_queue import QueueWorker, StudyAddress, open_study

CELL_ATTR = "cell"
"""The trial's user attribute that holds its cell (as its cell.json would, with its id)."""
IDENTITY_ATTR = "adamezo_experiment"
"""The study's user attribute that holds the protocol it was created with."""
STORAGE_FILE = "study.db"


def say_now(text: str) -> None:
    """Print a progress line at once (a worker's output is often a file or a pipe)."""
    print(text, flush=True)


@dataclass(frozen=True)
class Place:
    """Where an experiment's cells run and are published, and where their study lives."""

    runs: Path
    """Run directories, ``runs/<cell id>/``."""
    results: Path
    """Published cells, ``results/cells/<cell id>/``."""
    storage: str | None = None
    """An SQLAlchemy URL; default: an SQLite file in ``runs``."""
    study_name: str = "study"
    heartbeat_interval: int = 60
    grace_period: int | None = None

    def storage_url(self) -> str:
        """The study's storage: ``storage``, else ``runs``/study.db."""
        if self.storage is not None:
            return self.storage
        return f"sqlite:///{(self.runs / STORAGE_FILE).resolve()}"

    def address(self, protocol: Protocol) -> StudyAddress:
        return StudyAddress(
            storage=self.storage_url(),
            name=self.study_name,
            identity=protocol.identity(),
            identity_attr=IDENTITY_ATTR,
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
            what="experiment",
            other_name_hint="give this one another --study-name",
        )


class CellPlan:
    """The cells of a table as a :class:`~adamezo.finetune.trial_queue.Plan`."""

    def __init__(
        self,
        planned: Callable[[], list[Cell]],
        protocol: Protocol,
        place: Place,
        keep_weights: bool = False,
        say: Callable[[str], None] = say_now,
    ) -> None:
        self.planned, self.protocol, self.place = planned, protocol, place
        self.keep_weights, self.say = keep_weights, say

    def needed(self, trials: Sequence[FrozenTrial]) -> list[Cell]:
        """The planned cells not published yet whose followed cell (if any) is."""
        results = self.place.results
        return [
            c
            for c in self.planned()
            if not finished(results, c) and (c.follows is None or finished(results, c.follows))
        ]

    def key(self, point: Cell) -> Hashable:
        return point.id

    def point_of(self, trial: FrozenTrial | optuna.Trial) -> Cell | None:
        data = trial.user_attrs.get(CELL_ATTR)
        return None if data is None else cell_from_json(data)

    def enqueue(self, study: optuna.Study, point: Cell) -> None:
        study.enqueue_trial({}, user_attrs={CELL_ATTR: cell_to_json(point), "cell_id": point.id})

    def take(self, trial: optuna.Trial) -> Cell | None:
        return self.point_of(trial)  # enqueued with the trial's user attributes

    def run(self, trial: optuna.Trial, point: Cell) -> float:
        """Run the cell (see :func:`~adamezo.experiments.runner.run_cell`); its best dev loss
        (a zero-shot cell's dev loss)."""
        runs, results = self.place.runs, self.place.results
        trial.set_user_attr("run_dir", str(runs / point.id))
        remember(point, results)
        started = time.time()
        self.say(f"[study] {point.id}: {how(point, results)} ...")
        run_cell(point, self.protocol, runs, results, self.keep_weights)
        self.say(f"[study] {point.id}: done in {time.time() - started:.0f} s")
        record = cell_record(point, cell_dir(results, point.id))
        if point.optimizer == ZERO_SHOT:
            return float(record["metrics"]["dev"]["dev_loss"])
        return float(record["best_dev_loss"])


def run_cells(
    planned: Callable[[], list[Cell]],
    protocol: Protocol,
    place: Place,
    *,
    max_cells: int | None = None,
    keep_weights: bool = False,
    say: Callable[[str], None] = say_now,
) -> list[Cell]:
    """Run the unfinished cells of ``planned()`` in order with every other worker of the study,
    asking again after each cell; returns the cells this worker ran. A finished planned cell
    joins the table (its cell.json takes the table's tags)."""
    for cell in planned():
        if finished(place.results, cell):
            remember(cell, place.results)
    place.runs.mkdir(parents=True, exist_ok=True)
    study = open_study(place.address(protocol))
    plan = CellPlan(planned, protocol, place, keep_weights, say)
    poll = min(5.0, float(place.heartbeat_interval))
    return QueueWorker(study, plan, poll=poll, max_trials=max_cells, say=say, label="study").run()
