"""The tuned lr of each (task, optimizer, lr schedule), read from the finished cells of its lr
grid, and the grid's growth past an edge best (:mod:`adamezo.finetune.lr_grid`'s rule).

A grid starts from planned values (a constant lr: the optimizer's own grid; a decaying lr: four
values centred on the task's settled constant lr, see :func:`centred_grid`). Once every planned
value has finished, a best dev loss at the smallest or largest lr grows the grid by one value past
that edge (:meth:`LrChoice.extensions`), until the best is interior; the grid has then *settled*.
Until it settles, :meth:`LrChoice.lr` gives the best lr so far, and tasks, schedules and
optimizers without a grid of their own borrow one (:class:`GridBook`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from adamezo.finetune.lr_grid import GridState, best_lr, centred_grid, grid_state


@dataclass(frozen=True)
class GridBook:
    """Which optimizers have an lr grid of their own, and where the others take their lr."""

    grids: Mapping[str, tuple[float, ...]]
    """Each tuned optimizer's planned constant-lr grid (its middle value: the lr before any cell
    of the grid has finished)."""
    like: Mapping[str, str] = field(default_factory=dict)
    """An optimizer without a grid -> the optimizer whose tuned lr it takes."""
    fixed: Mapping[str, float] = field(default_factory=dict)
    """An optimizer that is not tuned -> its lr."""
    reference_task: str = "sst2"
    """A task without a grid of its own takes this task's choice."""
    tag: str = "lr"
    """The tag of the cells that belong to an lr grid."""

    def __post_init__(self) -> None:
        for name, grid in self.grids.items():
            if not grid:
                raise ValueError(f"grids[{name!r}] must hold at least one lr, got {grid!r}")
        for name, source in self.like.items():
            if source not in self.grids:
                raise ValueError(
                    f"like[{name!r}] must name an optimizer of grids {sorted(self.grids)}, "
                    f"got {source!r}"
                )

    def source(self, optimizer: str) -> str:
        """The optimizer whose grid gives ``optimizer``'s lr: itself, or the one it is like;
        ValueError for an optimizer the book does not know."""
        if optimizer in self.grids:
            return optimizer
        if optimizer in self.like:
            return self.like[optimizer]
        known = sorted({*self.grids, *self.like, *self.fixed})
        raise ValueError(f"optimizer must be one of {known} (an lr grid's), got {optimizer!r}")


class Extension(NamedTuple):
    """One value past the edge of a grid whose best sits there."""

    task: str
    optimizer: str
    schedule: str
    lr: float


class LrChoice:
    """The lr grids' state and choices, from the records of finished cells (see the module
    docstring); a record holds ``task``, ``optimizer``, ``lr_schedule``, ``lr``,
    ``best_dev_loss``, ``tags`` and ``finished``."""

    def __init__(self, records: Sequence[dict[str, Any]], book: GridBook) -> None:
        self.book = book
        self.records = [r for r in records if book.tag in r.get("tags", []) and r.get("finished")]

    def grid(self, task: str, optimizer: str, schedule: str) -> dict[float, float]:
        """lr -> best dev loss over the run, for the finished cells of one grid."""
        return {
            r["lr"]: r["best_dev_loss"]
            for r in self.records
            if (r["task"], r["optimizer"], r["lr_schedule"]) == (task, optimizer, schedule)
        }

    def best(self, task: str, optimizer: str, schedule: str) -> float | None:
        """The lr of lowest finite best dev loss among the grid's finished cells (None: none)."""
        return best_lr(self.grid(task, optimizer, schedule))

    def lr(self, task: str, optimizer: str, schedule: str) -> float:
        """The tuned lr: this task's grid (this schedule's, else the constant lr's), else the
        reference task's, of the optimizer or the one it is like; before any has finished, the
        middle of the planned grid."""
        if optimizer in self.book.fixed:
            return self.book.fixed[optimizer]
        source = self.book.source(optimizer)
        for grid_task in (task, self.book.reference_task):
            for sched in (schedule, "constant"):
                best = self.best(grid_task, source, sched)
                if best is not None:
                    return best
        grid = self.book.grids[source]
        return grid[len(grid) // 2]

    def planned_grid(self, task: str, optimizer: str, schedule: str) -> tuple[float, ...]:
        """The grid's first values: the optimizer's own at a constant lr; with a decaying lr,
        centred on the task's settled constant lr (empty until that has settled)."""
        if schedule == "constant":
            return tuple(self.book.grids.get(optimizer, ()))
        centre = self.settled(task, optimizer, "constant")
        return () if centre is None else centred_grid(centre)

    def state(self, task: str, optimizer: str, schedule: str) -> GridState | None:
        """Where one grid stands (None while it has no planned values)."""
        planned = self.planned_grid(task, optimizer, schedule)
        if not planned:
            return None
        grid = self.grid(task, optimizer, schedule)
        return grid_state(planned, grid, grid, grow=True)

    def settled(self, task: str, optimizer: str, schedule: str) -> float | None:
        """The chosen lr once every planned value has finished and the best is interior, else
        None."""
        state = self.state(task, optimizer, schedule)
        settled = state is not None and state.settled and state.interior
        return state.lr if settled else None

    def extensions(self) -> list[Extension]:
        """One more value past the edge of each grid whose best sits there, once its planned
        values have finished (the grid's cells that have not run yet)."""
        found = []
        keys = {(r["task"], r["optimizer"], r["lr_schedule"]) for r in self.records}
        for task, optimizer, schedule in sorted(keys):
            state = self.state(task, optimizer, schedule)
            if state is not None and state.next is not None:
                found.append(Extension(task, optimizer, schedule, state.next))
        return found
