"""The optimizer study: a resumable grid of fine-tuning runs on a real language model.

A study is a list of *cells*. A cell is one fine-tuning run (task, optimizer, tuning mode, lr, lr
schedule, seed, budget in forward passes; for AdaMeZO the betas, horizon and preset; μ where it is
not the default), carried out by :func:`adamezo.finetune.loop.run_finetune` in its own run directory
under ``--runs``. Running a table again skips the cells that have finished (their run directory
holds ``metrics.json``) and resumes the interrupted ones from their checkpoint, bit for bit, so the
grid can be run a piece at a time in the background and re-run to extend it. A finished cell's small
files (config.json, log.jsonl, metrics.json) are copied to ``--results``/cells/<cell id>/, where
they are committed; its weights are deleted unless ``--keep-weights`` (a full-tuning checkpoint of
SmolLM2-135M is 1 GB). Aggregation (``study_report.py``) reads only those run directories.

Tables, each one command (cells in the order they run, most informative first):

    python benchmarks/study.py run lr        # lr grids, MeZO and AdaMeZO, constant lr,
                                             # then seeds 1 and 2 at each grid's choice
    python benchmarks/study.py run main      # Table 3: zero-shot + every method, tuned lr
    python benchmarks/study.py run schedule  # the same grids and seeds with a linear decay
    python benchmarks/study.py run betas     # AdaMeZO's (beta1, beta2) grid on SST-2
    python benchmarks/study.py run horizon   # AdaMeZO's K on SST-2
    python benchmarks/study.py run ablation  # AdaMeZO's published update; μ 10x down and up
    python benchmarks/study.py run long      # MeZO and AdaMeZO over 2000 forward passes
    python benchmarks/study.py run precision # MeZO and AdaMeZO, 3 seeds, under bf16 autocast
    python benchmarks/study.py run methods   # lr grids of FZOO, LOZO, LOZO-M and ZO-Muon
    python benchmarks/study.py run gpu-long  # 10,000 steps of MeZO and AdaMeZO (for a GPU)
    python benchmarks/study.py plan main     # the cells, which are done, and the estimated cost
    python benchmarks/study.py run main --only 'sst5-*' '*-s1'   # one slice (shell patterns)
    python benchmarks/study_report.py        # tables, JSON and plots from the finished cells

Equal budgets are in forward passes: a zeroth-order step costs 2 (HiZOO 3), so each method gets
``budget // passes`` steps. First-order Adam (backprop, a reference as in the paper's Table 3) gets
as many steps as MeZO, each one forward and one backward pass.

Learning rates come from the ``lr`` table: per (task, optimizer, schedule), the lr of lowest best
dev loss. A grid is 4 values 3x apart; when the best sits at an edge the grid grows by one value
past that edge (the next ``run lr`` adds the cell), so the choice is never an edge. Tasks without
a grid of their own take SST-2's choice; methods without one take the tuned lr of the method they
resemble (see ``LR_LIKE``). The decaying-schedule grids (``run schedule``) are centred on each
task's constant-lr choice, once that has settled.

Table 3 runs at the lr grids' budget (300 forward passes), so its MeZO and AdaMeZO cells on the
grid tasks are the grid's own runs (seed 0) and their extra seeds: those ran without a test
evaluation, and a Table 3 cell completes them by *replay* (``adamezo replay``): the weights of the
run's best step are rebuilt bitwise from its base model and log, their dev loss is checked against
the one the run logged, and they are evaluated on the test split. No run is trained twice.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from adamezo.finetune.lr_grid import centred_grid, past_the_edge, step_lr

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "study"
RUNS = HERE.parent / "runs" / "study"
SHARED_DATA = HERE.parent.parent / "shared" / "data"

ZERO_SHOT = "zero-shot"
METHODS = ("fo-adam", "mezo", "mezo-switch", "hizoo", "zo-adam", "meazo", "adamezo")
PASSES_PER_STEP = {"hizoo": 3, "fzoo": 9, "zo-muon": 5}
"""Forward passes per zeroth-order step, where not 2 (FZOO: a clean pass and 8 queries; ZO-Muon:
a clean pass and 4 queries, at their defaults)."""

# Grids of 4 values 3x apart, centred where the method's step size lives: MeZO's step lr·p·z grows
# with |p|; the normalised methods (AdaMeZO, ZO-Adam, MEAZO) take lr as a per-coordinate step.
LR_GRIDS: dict[str, tuple[float, ...]] = {
    "mezo": (3e-7, 1e-6, 3e-6, 1e-5),
    "adamezo": (3e-6, 1e-5, 3e-5, 1e-4),
}
"""AdaMeZO's grid was first (1e-6 .. 3e-5); it moved up one step after its first cell (3e-6 on
SST-2) barely moved the dev loss in 300 passes while MeZO's did (docs/results.md)."""
LR_LIKE = {
    "hizoo": "mezo",
    "mezo-switch": "mezo",
    "zo-adam": "adamezo",
    "meazo": "adamezo",
}
"""Methods tuned on no grid of their own take the tuned lr of the method they resemble."""
NEW_METHODS = ("fzoo", "lozo", "lozo-m", "zo-muon")
NEW_METHOD_GRIDS: dict[str, tuple[float, ...]] = {
    "fzoo": (3e-4, 1e-3, 3e-3, 1e-2),
    "lozo": (3e-6, 1e-5, 3e-5, 1e-4),
    "lozo-m": (3e-6, 1e-5, 3e-5, 1e-4),
    "zo-muon": (3e-3, 1e-2, 3e-2, 1e-1),
}
"""The subspace and multi-query methods' own grids, each with the registry's default lr for full
tuning second, so the first cell of each grid runs at the method's default."""
EVAL_EVERY_PASSES = 50
"""The lr grids evaluate every 25 steps of 2 passes; a method with more passes per step
evaluates every ~50 passes too, so its curve has the same resolution in forward passes."""


def new_method_eval_every(optimizer: str) -> int | None:
    """Steps between evaluations of a new method with more than 2 passes per step (else None:
    the protocol's)."""
    passes = PASSES_PER_STEP.get(optimizer, 2)
    if optimizer not in NEW_METHODS or passes == 2:
        return None
    return max(1, round(EVAL_EVERY_PASSES / passes))


def grid_of(optimizer: str) -> tuple[float, ...]:
    """The planned constant-lr grid of an optimizer with a grid of its own (else empty)."""
    return LR_GRIDS.get(optimizer) or NEW_METHOD_GRIDS.get(optimizer, ())


FO_ADAM_LR = 1e-5
LR_TASKS = ("sst2", "trec")
MAIN_TASKS = ("sst2", "trec", "sst5", "snli", "cb", "rte")
"""The grid tasks first (their cells are replays), then the others from the cheapest per step:
CB stands for the SuperGLUE tasks (BoolQ's passages cost several times more per step)."""
ALL_METHOD_TASKS = MAIN_TASKS[:4]
"""Where every method runs (seed 0): the four cheapest tasks. CB's premises cost about three
times SNLI's per step, so with CB the six extra methods would cost about 5 more CPU hours."""
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Cell:
    """One fine-tuning run of the study."""

    task: str
    optimizer: str
    budget: int
    """Forward passes of training (zeroth-order steps x passes per step)."""
    lr: float = 0.0
    lr_schedule: str = "constant"
    seed: int = 0
    tuning: str = "full"
    betas: tuple[float, float] | None = None
    horizon: int | None = None
    preset: str | None = None
    """AdaMeZO's ``preset`` ("reference": the published code's unnormalised update)."""
    perturbation_scale: float | None = None
    """μ, where not the default of the tuning mode."""
    eval_every: int | None = None
    """Steps between dev evaluations, where not the protocol's."""
    test: bool = True
    tags: tuple[str, ...] = field(default=(), compare=False)
    """Which tables the cell belongs to (not part of its identity)."""
    follows: str | None = None
    """MeZO-switch only: the id of the AdaMeZO cell whose update norms it follows (its log is
    the run's ``norm_schedule``); the cell waits until that one has finished."""
    mixed_precision: str | None = None
    """``bf16``/``fp16``: the forward passes under autocast, float32 weights
    (``--mixed-precision``); unset: float32 throughout."""

    @property
    def steps(self) -> int:
        return max(1, self.budget // PASSES_PER_STEP.get(self.optimizer, 2))

    @property
    def id(self) -> str:
        if self.optimizer == ZERO_SHOT:
            return f"{self.task}-{ZERO_SHOT}-s{self.seed}"
        parts = [self.task, self.optimizer, self.tuning, f"lr{self.lr:g}", self.lr_schedule]
        if self.betas is not None:
            parts.append(f"b{self.betas[0]:g},{self.betas[1]:g}")
        if self.horizon is not None:
            parts.append(f"K{self.horizon}")
        if self.preset is not None:
            parts.append(self.preset)
        if self.perturbation_scale is not None:
            parts.append(f"mu{self.perturbation_scale:g}")
        if self.eval_every is not None:
            parts.append(f"ev{self.eval_every}")
        if self.mixed_precision is not None:
            parts.append(self.mixed_precision)
        parts += [f"fp{self.budget}", f"s{self.seed}"]
        return "-".join(parts) + ("" if self.test else "-notest")


@dataclass(frozen=True)
class Protocol:
    """Settings shared by every cell of a study (what the tables hold fixed)."""

    model: str = "smollm2-135m"
    batch_size: int = 16
    n_train: int = 1000
    n_dev: int = 200
    n_test: int = 500
    eval_every: int = 25
    patience: int = 1000
    """Early stopping is off (equal budgets): the best dev loss is kept (keep_best)."""
    max_length: int | None = 256
    """Long inputs (BoolQ passages, RTE) lose their start beyond this many tokens."""
    device: str = "cpu"
    data_dir: str | None = None
    num_layers: int | None = None


# --------------------------------------------------------------------------------------- tables


def lr_table(budget: int = 300) -> list[Cell]:
    """lr grids for MeZO and AdaMeZO at a constant lr on SST-2 and TREC (one seed)."""
    cells = []
    for task in LR_TASKS:
        # the middle of each grid first, then upwards, the methods alternating, so a grid cut
        # short still compares MeZO and AdaMeZO near their likely best
        for index in (1, 2, 3, 0):
            cells += [
                Cell(task, optimizer, budget, grid[index], test=False, tags=("lr",))
                for optimizer, grid in LR_GRIDS.items()
            ]
    # SST-2 first: the grid every other table's learning rates lean on
    return sorted(cells, key=lambda c: c.task != "sst2")


def schedule_table(tuned: LrChoice, budget: int = 300) -> list[Cell]:
    """lr grids with a linear decay to 0 (see :func:`centred_grid`), each once its task's
    constant-lr grid has settled; then their extensions and extra seeds."""
    cells = [
        Cell(task, optimizer, budget, lr, "linear", test=False, tags=("lr", "schedule"))
        for task in LR_TASKS
        for optimizer in LR_GRIDS
        for lr in tuned.planned_grid(task, optimizer, "linear")
    ]
    cells += [c for c in tuned.extensions(budget) if c.lr_schedule == "linear"]
    return cells + seeds_table(tuned, budget, schedules=("linear",))


def seeds_table(
    tuned: LrChoice, budget: int = 300, schedules: Sequence[str] = ("constant",)
) -> list[Cell]:
    """Seeds 1 and 2 of MeZO and AdaMeZO at each grid's chosen lr, once the grid is complete
    and its best is not at an edge (seed 0 is the grid's own cell): the comparison at the lr
    budget, with its spread over seeds."""
    cells = []
    for task in LR_TASKS:
        for schedule in schedules:
            for optimizer in LR_GRIDS:
                lr = tuned.settled(task, optimizer, schedule)
                if lr is not None:
                    tags = ("seeds",) if schedule == "constant" else ("seeds", "schedule")
                    cells += [
                        Cell(task, optimizer, budget, lr, schedule, seed, test=False, tags=tags)
                        for seed in SEEDS[1:]
                    ]
    return cells


def main_table(tuned: LrChoice, budget: int = 300, schedule: str = "constant") -> list[Cell]:
    """Table 3: zero-shot and every method at its tuned lr; MeZO and AdaMeZO on 3 seeds.

    A grid task's cells wait until its MeZO and AdaMeZO grids have settled, so none runs at a
    provisional lr (the other methods take their lr from those grids)."""

    def settled(task: str) -> bool:
        return task not in LR_TASKS or all(
            tuned.settled(task, optimizer, schedule) is not None for optimizer in LR_GRIDS
        )

    def cell(task: str, optimizer: str, seed: int = 0, **kwargs: Any) -> Cell:
        lr = tuned.lr(task, optimizer, schedule)
        return Cell(task, optimizer, budget, lr, schedule, seed, tags=("main",), **kwargs)

    tasks = [task for task in MAIN_TASKS if settled(task)]
    cells = []
    for seed in SEEDS:
        for task in MAIN_TASKS:
            cells.append(Cell(task, ZERO_SHOT, 0, seed=seed, tags=("main",)))
            if task in tasks:
                cells += [cell(task, optimizer, seed) for optimizer in ("mezo", "adamezo")]
    others = [
        cell(task, m, follows=cell(task, "adamezo").id if m == "mezo-switch" else None)
        for task in ALL_METHOD_TASKS
        if task in tasks
        for m in METHODS
        if m not in ("mezo", "adamezo")
    ]
    # every seed of MeZO and AdaMeZO (the comparison with its spread), then the other methods
    return cells + others


def methods_table(tuned: LrChoice, budget: int = 300) -> list[Cell]:
    """The subspace and multi-query methods' lr grids (seed 0, untested), SST-2 then TREC: every
    method at its default lr first, then the rest of each grid, then the extensions past an edge
    best."""
    cells = []
    for task in LR_TASKS:
        for index in (1, 2, 3, 0):
            cells += [
                Cell(
                    task,
                    method,
                    budget,
                    NEW_METHOD_GRIDS[method][index],
                    test=False,
                    eval_every=new_method_eval_every(method),
                    tags=("lr", "methods"),
                )
                for method in NEW_METHODS
            ]
    grown = [c for c in tuned.extensions(budget) if c.optimizer in NEW_METHODS]
    return sorted(cells + grown, key=lambda c: c.task != "sst2")


def adamezo_defaults() -> tuple[tuple[float, float], int]:
    """AdaMeZO's default (betas, horizon), read from its signature."""
    import inspect

    from adamezo.optim import AdaMeZO

    parameters = inspect.signature(AdaMeZO).parameters
    return tuple(parameters["betas"].default), parameters["horizon"].default


def _adamezo_grid(
    tuned: LrChoice, budget: int, task: str, tag: str, settings: list[dict[str, Any]]
) -> list[Cell]:
    """AdaMeZO at its tuned constant lr (unless a setting names its own), one untested cell per
    setting."""
    lr = tuned.lr(task, "adamezo", "constant")
    return [
        Cell(task, "adamezo", budget, **({"lr": lr} | s), test=False, tags=(tag,)) for s in settings
    ]


def betas_table(tuned: LrChoice, budget: int = 300, task: str = "sst2") -> list[Cell]:
    """AdaMeZO's (β₁, β₂) grid. β₂ = 0 drops the second moment: the update is then momentum
    MeZO, unnormalised, so those cells take MeZO's tuned lr (at AdaMeZO's, 30x larger, β = (0, 0)
    diverged)."""
    # The defaults' cell is the lr grid's cell at the tuned lr (betas=None), not a second run.
    default, _ = adamezo_defaults()
    momentum_lr = tuned.lr(task, "mezo", "constant")
    settings = [
        {"betas": None if (b1, b2) == default else (b1, b2)}
        | ({"lr": momentum_lr} if b2 == 0 else {})
        for b1 in (0.0, 0.5, 0.7, 0.9)
        for b2 in (0.0, 0.5, 0.9, 0.99)
    ]
    # the adaptive cells first: momentum MeZO is the question of another table
    settings.sort(key=lambda setting: "lr" in setting)
    return _adamezo_grid(tuned, budget, task, "betas", settings)


def horizon_table(tuned: LrChoice, budget: int = 300, task: str = "sst2") -> list[Cell]:
    _, default = adamezo_defaults()
    settings = [{"horizon": None if k == default else k} for k in (1, 2, 5, 10, 20, 40)]
    return _adamezo_grid(tuned, budget, task, "horizon", settings)


REFERENCE_LRS = (3e-6, 1e-5, 3e-5)
"""The published update's lr grid, centred where its step matches the normalised update's tuned
1e-3: over independent Gaussian directions at the default betas and K, the RMS of u per coordinate
is 100 x 0.54 unnormalised against 0.42 normalised (measured on 10^6 coordinates), so the same step
takes an lr 127x smaller, 7.9e-6."""
ABLATION_MUS = (1e-4, 1e-2)
"""μ 10x below and above the default 1e-3."""


def ablation_table(
    tuned: LrChoice, records: Sequence[dict[str, Any]], budget: int = 300, task: str = "sst2"
) -> list[Cell]:
    """Why AdaMeZO and MeZO end level (seed 0): AdaMeZO's published update (``preset=
    "reference"``) over an lr grid of its own, grown past an edge best as the lr grids are; then
    μ 10x below and above the default for MeZO and AdaMeZO at their tuned lrs."""
    reference = {
        r["lr"]: r["best_dev_loss"]
        for r in records
        if "ablation" in r.get("tags", [])
        and r.get("finished")
        and r["task"] == task
        and r.get("preset") == "reference"
    }
    lrs = sorted(set(REFERENCE_LRS) | set(reference))
    grown = past_the_edge(reference, REFERENCE_LRS)
    if grown is not None:
        lrs.append(grown)
    cells = [
        Cell(task, "adamezo", budget, lr, test=False, preset="reference", tags=("ablation",))
        for lr in lrs
    ]
    return cells + [
        Cell(
            task,
            optimizer,
            budget,
            tuned.lr(task, optimizer, "constant"),
            test=False,
            perturbation_scale=mu,
            tags=("ablation",),
        )
        for mu in ABLATION_MUS
        for optimizer in LR_GRIDS
    ]


LONG_BUDGET = 2000
LONG_EVAL_EVERY = 50
LONG_TASKS = ("sst2", "trec")


def long_table(
    tuned: LrChoice, records: Sequence[dict[str, Any]], budget: int = LONG_BUDGET
) -> list[Cell]:
    """MeZO and AdaMeZO over a budget several times the lr grids' (dev loss every 50 steps).

    Per task (SST-2 first): each method at its tuned constant lr and at a third of it (seed 0);
    once both have finished, seeds 1 and 2 at the better of the two, then seed 0 with a linear
    decay at that lr."""

    def cell(task: str, optimizer: str, lr: float, **kwargs: Any) -> Cell:
        return Cell(
            task, optimizer, budget, lr, eval_every=LONG_EVAL_EVERY, tags=("long",), **kwargs
        )

    finished = {r["id"]: r for r in records if r.get("finished") and "long" in r.get("tags", [])}
    cells = []
    for task in LONG_TASKS:
        first = {m: tuned.lr(task, m, "constant") for m in LR_GRIDS}
        candidates = {
            m: [cell(task, m, lr), cell(task, m, step_lr(lr, -1))] for m, lr in first.items()
        }
        cells += [c for pair in zip(*candidates.values(), strict=True) for c in pair]
        for optimizer, pair in candidates.items():
            done = [finished.get(c.id) for c in pair]
            if None in done:
                continue
            best = min(zip(pair, done, strict=True), key=lambda p: p[1]["best_dev_loss"])[0]
            cells += [cell(task, optimizer, best.lr, seed=seed) for seed in SEEDS[1:]]
            cells.append(cell(task, optimizer, best.lr, lr_schedule="linear"))
    # SST-2 whole first (the 3-seed comparison the report needs), then TREC
    return sorted(cells, key=lambda c: (c.task != "sst2", c.lr_schedule != "constant", c.seed))


PRECISION_TASK = "sst2"
PRECISION = "bf16"


def precision_table(tuned: LrChoice, budget: int = 300, task: str = PRECISION_TASK) -> list[Cell]:
    """MeZO and AdaMeZO at their tuned constant lr, seeds 0-2, with the forward passes under
    bf16 autocast (float32 weights): the equal-results check of mixed precision. Their float32
    twins (the same cell without ``mixed_precision``) are Table 3's cells; the report compares
    the two when both have finished."""
    return [
        Cell(
            task,
            optimizer,
            budget,
            tuned.lr(task, optimizer, "constant"),
            seed=seed,
            mixed_precision=PRECISION,
            tags=("precision",),
        )
        for seed in SEEDS
        for optimizer in LR_GRIDS
    ]


GPU_LONG_BUDGET = 20000
GPU_LONG_EVAL_EVERY = 250


def gpu_long_table(tuned: LrChoice, budget: int = GPU_LONG_BUDGET) -> list[Cell]:
    """The paper's scale of steps, for a GPU lease (seed 0, SST-2): MeZO and AdaMeZO over 10,000
    steps at their tuned constant lr, then at a third of it; dev loss every 250 steps."""
    lrs = {m: tuned.lr("sst2", m, "constant") for m in LR_GRIDS}
    return [
        Cell("sst2", m, budget, lr, eval_every=GPU_LONG_EVAL_EVERY, tags=("gpu-long",))
        for scale in (1, -1)
        for m, base in lrs.items()
        for lr in ([base] if scale == 1 else [step_lr(base, -1)])
    ]


# ------------------------------------------------------------------------------ learning rates


class LrChoice:
    """The tuned lr of each (task, optimizer, schedule), from the finished cells of the lr grid."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.records = [r for r in records if "lr" in r.get("tags", []) and r.get("finished")]

    def grid(self, task: str, optimizer: str, schedule: str) -> dict[float, float]:
        """lr -> best dev loss over the run, for the finished cells of one grid."""
        return {
            r["lr"]: r["best_dev_loss"]
            for r in self.records
            if (r["task"], r["optimizer"], r["lr_schedule"]) == (task, optimizer, schedule)
        }

    def best(self, task: str, optimizer: str, schedule: str) -> float | None:
        grid = {lr: loss for lr, loss in self.grid(task, optimizer, schedule).items()}
        finite = {lr: loss for lr, loss in grid.items() if math.isfinite(loss)}
        return min(finite, key=finite.get) if finite else None

    def lr(self, task: str, optimizer: str, schedule: str) -> float:
        """The tuned lr: this task's grid, else SST-2's, else the resembling method's."""
        if optimizer == "fo-adam":
            return FO_ADAM_LR
        source = optimizer if grid_of(optimizer) else LR_LIKE[optimizer]
        for grid_task in (task, "sst2"):
            for sched in (schedule, "constant"):
                best = self.best(grid_task, source, sched)
                if best is not None:
                    return best
        grid = grid_of(source)
        return grid[len(grid) // 2]

    def planned_grid(self, task: str, optimizer: str, schedule: str) -> tuple[float, ...]:
        """The grid's first four values: ``LR_GRIDS`` at a constant lr; with a decaying lr,
        centred on the task's settled constant lr (empty until that has settled)."""
        if schedule == "constant":
            return grid_of(optimizer)
        centre = self.settled(task, optimizer, "constant")
        return () if centre is None else centred_grid(centre)

    def settled(self, task: str, optimizer: str, schedule: str) -> float | None:
        """The chosen lr once the grid is complete and its best is not at an edge, else None."""
        grid = self.grid(task, optimizer, schedule)
        best = self.best(task, optimizer, schedule)
        planned = set(self.planned_grid(task, optimizer, schedule))
        if best is None or not planned or not planned <= set(grid):
            return None
        return None if best in (min(grid), max(grid)) else best

    def extensions(self, budget: int) -> list[Cell]:
        """One more grid value past each edge where a complete grid's best sits."""
        cells = []
        keys = {(r["task"], r["optimizer"], r["lr_schedule"]) for r in self.records}
        for task, optimizer, schedule in sorted(keys):
            grid = self.grid(task, optimizer, schedule)
            new = past_the_edge(grid, self.planned_grid(task, optimizer, schedule))
            if new is None:
                continue
            tags = ("lr",) if schedule == "constant" else ("lr", "schedule")
            if optimizer in NEW_METHODS:
                tags = ("lr", "methods")
            cells.append(
                Cell(
                    task,
                    optimizer,
                    budget,
                    new,
                    schedule,
                    test=False,
                    eval_every=new_method_eval_every(optimizer),
                    tags=tags,
                )
            )
        return cells


# ------------------------------------------------------------------------------------ running


def cell_record(cell: Cell, run_dir: Path) -> dict[str, Any]:
    """What the report needs of one cell, read from its run directory alone."""
    record = {"id": cell.id, **asdict(cell), "steps": cell.steps, "finished": False}
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        return record
    metrics = json.loads(metrics_path.read_text())
    record.update(finished=True, metrics=metrics)
    from adamezo.finetune.records import LOG, EvalRecord, read_log

    evals = [r for r in read_log(run_dir / LOG, cut_tail_ok=True) if isinstance(r, EvalRecord)]
    # The zero-shot evaluation (step 0) is left out: an lr that never improves on it must not tie
    # with one that does.
    losses = [e.dev_loss for e in evals if e.step > 0 and e.dev_loss is not None]
    record["best_dev_loss"] = min(losses) if losses else math.inf
    return record


def run_cell(cell: Cell, protocol: Protocol, runs: Path, results: Path, keep_weights: bool) -> None:
    """Run (or resume) one cell, then copy its small files to ``results``/cells."""
    run_dir = runs / cell.id
    if (run_dir / "metrics.json").exists():
        _publish(run_dir, results / "cells" / cell.id, keep_weights)
        return
    if cell.optimizer == ZERO_SHOT:
        _zero_shot(cell, protocol, run_dir)
    elif _by_replay(cell, results):
        test_by_replay(results / "cells" / replace(cell, test=False).id, run_dir, protocol)
    else:
        from adamezo.finetune.loop import run_finetune

        run_finetune(finetune_config(cell, protocol, run_dir, results))
    _publish(run_dir, results / "cells" / cell.id, keep_weights)


def _finished(results: Path, cell: Cell) -> bool:
    return (results / "cells" / cell.id / "metrics.json").exists()


def _by_replay(cell: Cell, results: Path) -> bool:
    """Whether the cell is completed by replaying its finished, untested twin."""
    from adamezo.optim.registry import optimizer_entry

    if not cell.test or cell.optimizer == ZERO_SHOT:
        return False
    zeroth_order = optimizer_entry(cell.optimizer).zeroth_order  # only those replay
    return zeroth_order and _finished(results, replace(cell, test=False))


DEV_LOSS_TOLERANCE = 1e-5
"""How far the replayed weights' dev loss may be from the logged one (relative): evaluation
batches are the same, so only summation order inside the kernels can differ."""


def test_by_replay(twin_dir: Path, run_dir: Path, protocol: Protocol) -> None:
    """Complete a finished run made without a test evaluation: rebuild the weights it kept (its
    best step) from its log with ``adamezo replay``, check their dev loss against the logged one,
    evaluate them on the test split, and write the twin's files plus the test metrics to
    ``run_dir``. Raises RuntimeError if the replayed weights are not the run's."""
    import tempfile

    from adamezo.finetune.config import FinetuneConfig
    from adamezo.finetune.replay import replay_run

    config = FinetuneConfig.from_dict(json.loads((twin_dir / "config.json").read_text()))
    metrics = json.loads((twin_dir / "metrics.json").read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=run_dir) as scratch:
        # Unverified: the study's earlier runs predate the end record's weights hash, and the
        # dev loss check below is this function's own proof that the weights are the run's.
        replayed = replay_run(
            twin_dir, Path(scratch) / "model", device=protocol.device, verify=False
        )
        del replayed.model  # the exported copy is what gets evaluated
        scores = evaluate_splits(
            str(Path(scratch) / "model"),
            config.task,
            data_dir=config.data_dir,
            n_dev=config.n_dev,
            n_test=config.n_test,
            seed=config.seed,
            batch_size=config.eval_batch_size,
            max_length=config.max_length,
            dtype=config.dtype,
            device=protocol.device,
            mixed_precision=config.mixed_precision,
        )
    logged, rebuilt = metrics["dev"]["dev_loss"], scores["dev"]["dev_loss"]
    if abs(rebuilt - logged) > DEV_LOSS_TOLERANCE * abs(logged):
        raise RuntimeError(
            f"{twin_dir}: the replayed weights of step {replayed.step} have dev loss {rebuilt!r}, "
            f"the run logged {logged!r}: they are not the run's weights"
        )
    for name in ("config.json", "log.jsonl"):
        shutil.copyfile(twin_dir / name, run_dir / name)
    metrics["test"] = scores["test"]
    metrics["tested_by_replay"] = {
        "run": twin_dir.name,
        "step": replayed.step,
        "dev_loss_logged": logged,
        "dev_loss_replayed": rebuilt,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")


def finetune_config(cell: Cell, protocol: Protocol, run_dir: Path, results: Path = RESULTS):
    from adamezo.finetune.config import FinetuneConfig
    from adamezo.finetune.rundir import RunDirectory

    # A run stopped before its first checkpoint has nothing to resume: it starts over.
    started = (run_dir / "config.json").exists()
    resume = started and RunDirectory(run_dir).nothing_to_resume() is None
    return FinetuneConfig(
        model=protocol.model,
        task=cell.task,
        optimizer=cell.optimizer,
        tuning=cell.tuning,
        output_dir=str(run_dir),
        data_dir=protocol.data_dir,
        steps=cell.steps,
        batch_size=protocol.batch_size,
        lr=cell.lr,
        lr_schedule=cell.lr_schedule,
        betas=cell.betas,
        horizon=cell.horizon,
        preset=cell.preset,
        perturbation_scale=cell.perturbation_scale,
        eval_every=cell.eval_every or protocol.eval_every,
        patience=protocol.patience,
        n_train=protocol.n_train,
        n_dev=protocol.n_dev,
        n_test=protocol.n_test,
        max_length=protocol.max_length,
        seed=cell.seed,
        num_layers=protocol.num_layers,
        device=protocol.device,
        save_model=False,
        test=cell.test,
        progress=False,
        mixed_precision=cell.mixed_precision or "no",
        resume=resume,
        overwrite=started and not resume,
        norm_schedule=(
            str(results / "cells" / cell.follows / "log.jsonl") if cell.follows else None
        ),
        extra={"study_cell": cell.id, "budget_forward_passes": cell.budget},
    )


def evaluate_splits(model: str, task: str, **settings: Any) -> dict[str, dict[str, Any]]:
    """The dev and test metrics of ``model`` (``evaluate_model``'s keys of each split)."""
    from adamezo.finetune.evaluate import evaluate_model

    scores = {}
    for split in ("dev", "test"):
        result = evaluate_model(model, task, split=split, progress=False, **settings)
        scores[split] = {k: v for k, v in result.items() if k.startswith(f"{split}_")}
    return scores


def _zero_shot(cell: Cell, protocol: Protocol, run_dir: Path) -> None:
    metrics: dict[str, Any] = {"task": cell.task, "optimizer": ZERO_SHOT, "seed": cell.seed}
    metrics |= evaluate_splits(
        protocol.model,
        cell.task,
        data_dir=protocol.data_dir,
        n_dev=protocol.n_dev,
        n_test=protocol.n_test,
        seed=cell.seed,
        max_length=protocol.max_length,
        num_layers=protocol.num_layers,
        device=protocol.device,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(protocol) | asdict(cell), indent=1))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")


SMALL_FILES = ("config.json", "log.jsonl", "metrics.json")


def _publish(run_dir: Path, target: Path, keep_weights: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, target / name)
    if not keep_weights:
        for name in ("checkpoint", "best.safetensors", "model"):
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


# --------------------------------------------------------------------------------- the study


def read_records(cells: Iterable[Cell], results: Path) -> list[dict[str, Any]]:
    return [cell_record(cell, results / "cells" / cell.id) for cell in cells]


def all_known_cells(results: Path) -> list[Cell]:
    """Every cell with a published run directory (for the report and lr choice)."""
    cells = []
    for path in sorted((results / "cells").glob("*/cell.json")):
        data = json.loads(path.read_text())
        data["tags"] = tuple(data.get("tags", ()))
        if data.get("betas") is not None:
            data["betas"] = tuple(data["betas"])
        cells.append(Cell(**data))
    return cells


def tuned_lrs(results: Path) -> LrChoice:
    return LrChoice(read_records(all_known_cells(results), results))


def table_cells(name: str, results: Path, budgets: dict[str, int]) -> list[Cell]:
    tuned = tuned_lrs(results)
    if name == "lr":
        # each task's grid, the grid's extensions, then its extra seeds
        cells = lr_table(budgets["lr"]) + [
            c
            for c in tuned.extensions(budgets["lr"])
            if c.lr_schedule == "constant" and c.optimizer in LR_GRIDS
        ]
        cells += seeds_table(tuned, budgets["lr"])
        return sorted(cells, key=lambda c: (c.task != "sst2", "seeds" in c.tags))
    if name == "schedule":
        return schedule_table(tuned, budgets["lr"])
    if name == "main":
        # cells that only replay a finished run first: minutes each, and they complete seeds
        cells = main_table(tuned, budgets["main"])
        return sorted(cells, key=lambda c: not _by_replay(c, results))
    if name == "betas":
        return betas_table(tuned, budgets["lr"])
    if name == "horizon":
        return horizon_table(tuned, budgets["lr"])
    if name == "ablation":
        return ablation_table(tuned, read_records(all_known_cells(results), results), budgets["lr"])
    if name == "methods":
        return methods_table(tuned, budgets["lr"])
    if name == "long":
        return long_table(tuned, read_records(all_known_cells(results), results))
    if name == "gpu-long":
        return gpu_long_table(tuned)
    if name == "precision":
        return precision_table(tuned, budgets["main"])
    raise ValueError(f"table must be one of {TABLES}, got {name!r}")


TABLES = (
    "lr",
    "main",
    "schedule",
    "betas",
    "horizon",
    "ablation",
    "long",
    "methods",
    "gpu-long",
    "precision",
)
OPTIONAL_FIELDS = ("preset", "perturbation_scale", "eval_every", "mixed_precision")
"""Cell fields a cell.json leaves out when unset (the files from before they existed match)."""


def remember(cell: Cell, results: Path) -> None:
    """Record the cell's definition next to its files, so the report can rebuild it."""
    target = results / "cells" / cell.id
    target.mkdir(parents=True, exist_ok=True)
    path = target / "cell.json"
    tags = set(cell.tags)
    if path.exists():
        tags |= set(json.loads(path.read_text()).get("tags", []))
    data = {k: v for k, v in asdict(cell).items() if k not in OPTIONAL_FIELDS or v is not None}
    text = json.dumps(data | {"tags": sorted(tags)}, indent=1) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run_cells(
    planned: Callable[[], list[Cell]],
    protocol: Protocol,
    *,
    runs: Path,
    results: Path,
    max_cells: int | None = None,
    keep_weights: bool = False,
) -> list[Cell]:
    """Run the unfinished cells of ``planned()`` in order, asking again after each cell (the lr
    choice and grid extensions depend on what finished); returns the cells run. Several workers
    may share ``runs``: each takes the first pending cell no live worker holds (a lock file)."""
    for cell in planned():
        if _finished(results, cell):
            remember(cell, results)  # a finished cell joins this table too (its tags say so)
    done: list[Cell] = []
    while max_cells is None or len(done) < max_cells:
        pending = [
            c
            for c in planned()
            if not _finished(results, c)
            and (c.follows is None or (results / "cells" / c.follows / "metrics.json").exists())
        ]
        cell = next((c for c in pending if _claim(runs, c)), None)
        if cell is None:
            break
        try:
            remember(cell, results)
            started = time.time()
            what = (
                "evaluation"
                if cell.optimizer == ZERO_SHOT
                else "replay of its untested twin, then test"
                if _by_replay(cell, results)
                else f"{cell.steps} steps"
            )
            print(f"[study] {cell.id}: {what} ...", flush=True)
            run_cell(cell, protocol, runs, results, keep_weights)
            print(f"[study] {cell.id}: done in {time.time() - started:.0f} s", flush=True)
        finally:
            _lock(runs, cell).unlink(missing_ok=True)
        done.append(cell)
    return done


def _lock(runs: Path, cell: Cell) -> Path:
    return runs / f"{cell.id}.lock"


def _claim(runs: Path, cell: Cell) -> bool:
    """Take the cell's lock file unless a live process holds it (a dead holder's lock is stale:
    its run directory resumes from the last checkpoint)."""
    lock = _lock(runs, cell)
    runs.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with open(lock, "x") as handle:
                handle.write(str(os.getpid()))
            return True
        except FileExistsError:
            try:
                holder = int(lock.read_text() or 0)
                os.kill(holder, 0)
                return holder == os.getpid()
            except (ValueError, ProcessLookupError):
                lock.unlink(missing_ok=True)  # stale: try once more
            except PermissionError:
                return False
    return False


def selected(cells: Iterable[Cell], patterns: Sequence[str]) -> list[Cell]:
    """The cells whose id matches one of the shell-style ``patterns`` (all cells if none), in
    their table's order: lets a worker take one slice of a table (``--only 'sst5-*'``)."""
    return [c for c in cells if not patterns or any(fnmatch(c.id, p) for p in patterns)]


def plan(
    name: str,
    results: Path,
    budgets: dict[str, int],
    seconds_per_pass: float,
    only: Sequence[str] = (),
) -> str:
    lines = []
    total = 0.0
    for cell in selected(table_cells(name, results, budgets), only):
        finished = (results / "cells" / cell.id / "metrics.json").exists()
        replayed = not finished and _by_replay(cell, results)
        cost = 0.0 if finished or replayed else cell.budget * seconds_per_pass
        total += cost
        note = " (replay + test)" if replayed else ""
        lines.append(f"{'done ' if finished else 'to do'}  {cell.id}  ~{cost / 60:.0f} min{note}")
    lines.append(f"estimated time left: {total / 3600:.1f} h (training passes only)")
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "plan"))
    parser.add_argument("table", choices=TABLES)
    parser.add_argument("--runs", type=Path, default=RUNS, help="where run directories live")
    parser.add_argument("--results", type=Path, default=RESULTS, help="published cell files")
    parser.add_argument("--model", default=Protocol.model)
    parser.add_argument("--device", default=Protocol.device)
    parser.add_argument(
        "--data-dir",
        default=str(SHARED_DATA) if SHARED_DATA.is_dir() else None,
        help="task files (default: ../shared/data beside the repository, if there)",
    )
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--lr-budget", type=int, default=300, help="forward passes, lr grids")
    parser.add_argument("--main-budget", type=int, default=300, help="forward passes, Table 3")
    parser.add_argument("--max-cells", type=int, default=None)
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        metavar="PATTERN",
        help="only cells whose id matches one of these shell patterns, e.g. 'sst5-*' '*-s1'",
    )
    parser.add_argument("--keep-weights", action="store_true")
    parser.add_argument(
        "--seconds-per-pass",
        type=float,
        default=2.0,
        help="for `plan` (measured: 2 workers, evals)",
    )
    for name in ("batch_size", "n_train", "n_dev", "n_test", "eval_every", "max_length"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    budgets = {"lr": args.lr_budget, "main": args.main_budget}
    if args.command == "plan":
        print(plan(args.table, args.results, budgets, args.seconds_per_pass, args.only))
        return 0
    protocol = Protocol(
        model=args.model, device=args.device, data_dir=args.data_dir, num_layers=args.num_layers
    )
    overrides = {
        name: getattr(args, name)
        for name in ("batch_size", "n_train", "n_dev", "n_test", "eval_every", "max_length")
        if getattr(args, name) is not None
    }
    protocol = replace(protocol, **overrides)
    run_cells(
        lambda: selected(table_cells(args.table, args.results, budgets), args.only),
        protocol,
        runs=args.runs,
        results=args.results,
        max_cells=args.max_cells,
        keep_weights=args.keep_weights,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
