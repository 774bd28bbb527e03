"""The optimizer study: a resumable grid of fine-tuning runs on a real language model.

A study is a list of *cells* (:class:`adamezo.experiments.cells.Cell`). A cell is one fine-tuning
run (task, optimizer, tuning mode, lr, lr schedule, seed, budget in forward passes; for AdaMeZO the
betas, horizon and preset; μ where it is not the default), carried out by
:func:`adamezo.finetune.loop.run_finetune` in its own run directory ``--runs``/<cell id>/. This
script holds the study's data (its grids, tasks, seeds, budgets and tables) and its command line;
the machinery is :mod:`adamezo.experiments`. Running a table again skips the cells that have
finished (their ``--results``/cells/<cell id>/metrics.json is published) and resumes the
interrupted ones from their checkpoint, bit for bit, so the grid can be run a piece at a time in the
background and re-run to extend it. A finished cell's small files (config.json, log.jsonl,
metrics.json) are copied to ``--results``/cells/<cell id>/, where they are committed; its weights
are deleted unless ``--keep-weights`` (a full-tuning checkpoint of SmolLM2-135M is 1 GB).
Aggregation (``study_report.py``) reads only those published directories.

Workers share the study's cells through an Optuna study (``--storage``; by default
``--runs``/study.db, an SQLite file): start ``run TABLE`` in as many processes as there are cores
or GPUs to spare, and each takes the next cell no other worker holds, with no lock files; on
several machines, point them at one database (``--storage postgresql://...``) and one results
directory. A running cell sends a heartbeat every ``--heartbeat-interval`` seconds; when a worker
dies, the next one to look takes its cell over and resumes its run directory from the last
checkpoint (where the run directories are shared; elsewhere it starts the cell over, to the same
result). Workers of different tables share the one study too: a cell two tables plan runs once,
and a cell left by a dead worker is taken over by whichever worker looks next. A worker whose
table's remaining cells all run elsewhere waits for them (the table may grow once they finish),
then exits. Optuna comes with ``pip install 'adamezo[sweep]'``.

Tables, each one command (cells in the order they run, most informative first):

    python benchmarks/study.py run lr        # lr grids, MeZO and AdaMeZO, constant lr,
                                             # then seeds 1 and 2 at each grid's choice
    python benchmarks/study.py run main      # Table 3: zero-shot + every method, tuned lr
    python benchmarks/study.py run schedule  # the same grids and seeds with a linear decay
    python benchmarks/study.py run betas     # AdaMeZO's (beta1, beta2) grid on SST-2
    python benchmarks/study.py run horizon   # AdaMeZO's K on SST-2
    python benchmarks/study.py run ablation  # AdaMeZO's published update; μ 10x down and up
    python benchmarks/study.py run long      # MeZO, AdaMeZO (and the best new method)
                                             # over 2000 forward passes
    python benchmarks/study.py run precision # MeZO and AdaMeZO, 3 seeds, under bf16 autocast
    python benchmarks/study.py run methods   # lr grids of FZOO, LOZO, LOZO-M and ZO-Muon,
                                             # then their Table 3 cells
    python benchmarks/study.py run gpu-long  # 10,000 steps of MeZO and AdaMeZO (for a GPU)
    python benchmarks/study.py run holes     # lr grids of HiZOO, ZO-Adam and MEAZO of their
                                             # own; beta2 = 0 at beta1 0.7, 0.9; μ 1e-4, 1e-2
    python benchmarks/study.py plan main     # the cells, which are done, and the estimated cost
    python benchmarks/study.py run main --only 'sst5-*' '*-s1'   # one slice (shell patterns)
    for i in 1 2; do python benchmarks/study.py run lr & done  # two workers sharing a table
    python benchmarks/study_report.py        # tables, JSON and plots from the finished cells

Equal budgets are in forward passes: a zeroth-order step costs 2 (HiZOO 3, ZO-Muon 5, FZOO 9 at
their defaults: :func:`~adamezo.experiments.cells.passes_per_step`), so each method gets
``budget // passes`` steps. First-order Adam (backprop, a reference as in the paper's Table 3)
gets as many steps as MeZO, each one forward and one backward pass.

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

The subspace and multi-query methods (``NEW_METHODS``) are tuned and tested in the ``methods``
table: their lr grids on SST-2 and TREC, then, as each grid settles, their Table 3 cells at the
settled lr (the grid tasks' seed-0 cells are the grid's runs, replayed), seed 0 on every task;
once all their grids have settled, the best of them (:func:`best_new_method`: lowest mean ratio
of its best dev loss to MeZO's on SST-2 and TREC) runs seeds 1 and 2 there and joins the long
table.

The methods that borrow a tuned lr (HiZOO, ZO-Adam, MEAZO) get grids of their own in the
``holes`` table (:func:`holes_table`): centred on the borrowed lr, whose cell is Table 3's run,
and read by their own :class:`LrChoice`, so no other table's lr or cells change with them.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from adamezo.experiments.cells import ZERO_SHOT, Cell, Protocol, passes_per_step, selected
from adamezo.experiments.lr_choice import GridBook, LrChoice
from adamezo.experiments.records import matching
from adamezo.experiments.replay_testing import by_replay
from adamezo.experiments.store import finished, known_records
from adamezo.experiments.workers import Place, run_cells
from adamezo.finetune.lr_grid import best_lr, centred_grid, past_the_edge, step_lr
from adamezo.optim import AdaMeZO

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "study"
RUNS = HERE.parent / "runs" / "study"
SHARED_DATA = HERE.parent.parent / "shared" / "data"

METHODS = ("fo-adam", "mezo", "mezo-switch", "hizoo", "zo-adam", "meazo", "adamezo")
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


def steps_between(optimizer: str, passes: int) -> int:
    """Steps of ``optimizer`` nearest to ``passes`` forward passes (at least 1)."""
    return max(1, round(passes / passes_per_step(optimizer)))


def new_method_eval_every(optimizer: str) -> int | None:
    """Steps between evaluations of a new method with more than 2 passes per step (else None:
    the protocol's)."""
    if optimizer not in NEW_METHODS or passes_per_step(optimizer) == 2:
        return None
    return steps_between(optimizer, EVAL_EVERY_PASSES)


FO_ADAM_LR = 1e-5
LR_TASKS = ("sst2", "trec")
MAIN_TASKS = ("sst2", "trec", "sst5", "snli", "cb", "rte")
"""The grid tasks first (their cells are replays), then the others from the cheapest per step:
CB stands for the SuperGLUE tasks (BoolQ's passages cost several times more per step)."""
ALL_METHOD_TASKS = MAIN_TASKS[:4]
"""Where every method runs (seed 0): the four cheapest tasks. CB's premises cost about three
times SNLI's per step, so with CB the six extra methods would cost about 5 more CPU hours."""
SEEDS = (0, 1, 2)
GRIDS = GridBook(grids=LR_GRIDS | NEW_METHOD_GRIDS, like=LR_LIKE, fixed={"fo-adam": FO_ADAM_LR})
"""Which methods have an lr grid of their own and where the others take their lr."""


def lr_choice(records: Sequence[dict[str, Any]]) -> LrChoice:
    """The study's lr choice from the records of its finished cells."""
    return LrChoice(records, GRIDS)


def extensions(tuned: LrChoice, budget: int) -> list[Cell]:
    """The cells one grid value past each edge where a complete grid's best sits."""
    cells = []
    for task, optimizer, schedule, lr in tuned.extensions():
        tags = ("lr",) if schedule == "constant" else ("lr", "schedule")
        if optimizer in NEW_METHODS:
            tags = ("lr", "methods")
        eval_every = new_method_eval_every(optimizer)
        cells.append(
            Cell(
                task, optimizer, budget, lr, schedule, test=False, eval_every=eval_every, tags=tags
            )
        )
    return cells


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
    cells += [c for c in extensions(tuned, budget) if c.lr_schedule == "linear"]
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


def table3_cell(
    tuned: LrChoice,
    task: str,
    optimizer: str,
    budget: int,
    schedule: str = "constant",
    seed: int = 0,
) -> Cell:
    """Table 3's cell of ``optimizer`` on ``task``: at its tuned lr, tested; MeZO-switch follows
    the update norms of AdaMeZO's cell of the same task."""
    follows = None
    if optimizer == "mezo-switch":
        follows = table3_cell(tuned, task, "adamezo", budget, schedule).id
    lr = tuned.lr(task, optimizer, schedule)
    return Cell(task, optimizer, budget, lr, schedule, seed, tags=("main",), follows=follows)


def main_table(tuned: LrChoice, budget: int = 300, schedule: str = "constant") -> list[Cell]:
    """Table 3: zero-shot and every method at its tuned lr; MeZO and AdaMeZO on 3 seeds.

    A grid task's cells wait until its MeZO and AdaMeZO grids have settled, so none runs at a
    provisional lr (the other methods take their lr from those grids)."""

    def settled(task: str) -> bool:
        return task not in LR_TASKS or all(
            tuned.settled(task, optimizer, schedule) is not None for optimizer in LR_GRIDS
        )

    def cell(task: str, optimizer: str, seed: int = 0) -> Cell:
        return table3_cell(tuned, task, optimizer, budget, schedule, seed)

    tasks = [task for task in MAIN_TASKS if settled(task)]
    cells = []
    for seed in SEEDS:
        for task in MAIN_TASKS:
            cells.append(Cell(task, ZERO_SHOT, 0, seed=seed, tags=("main",)))
            if task in tasks:
                cells += [cell(task, optimizer, seed) for optimizer in ("mezo", "adamezo")]
    others = [
        cell(task, m)
        for task in ALL_METHOD_TASKS
        if task in tasks
        for m in METHODS
        if m not in ("mezo", "adamezo")
    ]
    # every seed of MeZO and AdaMeZO (the comparison with its spread), then the other methods
    return cells + others


def trend_past_the_edge(grid: dict[float, float], planned: Sequence[float]) -> float | None:
    """The lr one step past the planned grid's edge when the best so far is the widest value
    tried on that side and it beat its finished neighbour (the loss still falls into the edge),
    even if the grid's far end has not run yet; else None.

    Only the order changes: a grid grows here no further than :func:`past_the_edge` would once
    complete, but the informative cell past an edge need not wait for the far end's."""
    best = best_lr(grid)
    if best is None:
        return None
    lrs = sorted(grid)
    for edge, neighbour, direction in ((lrs[-1], -2, 1), (lrs[0], 1, -1)):
        beyond_plan = edge >= max(planned) if direction > 0 else edge <= min(planned)
        if best == edge and beyond_plan and len(lrs) > 1 and grid[lrs[neighbour]] > grid[best]:
            return step_lr(best, direction)
    return None


def grid_cells(
    choice: LrChoice,
    task: str,
    planned: dict[str, tuple[float, ...]],
    order: Sequence[int],
    make: Callable[[str, str, float], Cell],
) -> list[Cell]:
    """One task's constant-lr grids (``planned``: method -> its planned values), the methods
    alternating: first one step past an edge where the loss still falls into it
    (:func:`trend_past_the_edge`), then the planned values in the order of their ``order``
    indices; ``make(task, method, lr)`` builds each cell."""
    cells = []
    for method, values in planned.items():
        grid = choice.grid(task, method, "constant")
        lr = trend_past_the_edge(grid, values)
        if lr is not None and lr not in grid:
            cells.append(make(task, method, lr))
    for index in order:
        cells += [make(task, method, values[index]) for method, values in planned.items()]
    return cells


def methods_table(tuned: LrChoice, budget: int = 300) -> list[Cell]:
    """The subspace and multi-query methods' lr grids (seed 0, untested), SST-2 then TREC: one
    step past an edge where the loss still falls into it (:func:`trend_past_the_edge`) first,
    then every method at its default lr, then the rest of each grid, then the extensions past an
    edge best."""

    def grid_cell(task: str, method: str, lr: float) -> Cell:
        return Cell(
            task,
            method,
            budget,
            lr,
            test=False,
            eval_every=new_method_eval_every(method),
            tags=("lr", "methods"),
        )

    cells = []
    for task in LR_TASKS:
        cells += grid_cells(tuned, task, NEW_METHOD_GRIDS, (1, 2, 3, 0), grid_cell)
    grown = [c for c in extensions(tuned, budget) if c.optimizer in NEW_METHODS]
    unique = list(dict.fromkeys(cells + grown))
    return sorted(unique, key=lambda c: c.task != "sst2")


def settled_loss(tuned: LrChoice, task: str, optimizer: str) -> float | None:
    """The best dev loss of the constant-lr grid's cell at its settled lr (seed 0), None until
    the grid has settled."""
    lr = tuned.settled(task, optimizer, "constant")
    return None if lr is None else tuned.grid(task, optimizer, "constant")[lr]


def best_new_method(tuned: LrChoice) -> str | None:
    """The new method that gets 3 seeds in Table 3 and a place in the long table.

    Its score is the mean over the grid tasks (SST-2, TREC) of its settled lr's best dev loss
    divided by MeZO's (both the grids' seed-0 cells): a ratio, so that TREC's six classes weigh
    no more than SST-2's two. The lowest score wins (a tie: the first in ``NEW_METHODS``). None
    until every new method's grid and MeZO's have settled on both tasks, so the choice, made from
    finished cells only, never changes once made."""
    scores = {}
    for method in NEW_METHODS:
        ratios = []
        for task in LR_TASKS:
            loss, mezo = settled_loss(tuned, task, method), settled_loss(tuned, task, "mezo")
            if loss is None or mezo is None:
                return None
            ratios.append(loss / mezo)
        scores[method] = statistics.fmean(ratios)
    return min(scores, key=scores.__getitem__)


def new_methods_main(tuned: LrChoice, budget: int = 300) -> list[Cell]:
    """The new methods' Table 3 cells: each at its settled constant lr on every task, seed 0; then
    seeds 1 and 2 of the best of them (:func:`best_new_method`).

    A grid task's cell waits until that method's grid on it has settled; the other tasks take
    SST-2's lr and wait for SST-2's grid. The cells evaluate as the grids do, so those on a grid
    task at seed 0 are the grid's own runs, completed by replay. Order: seed 0 of every method
    on the four cheapest tasks, then the best method's other cells, then the rest (CB, RTE)."""
    best = best_new_method(tuned)
    cells = []
    for task in MAIN_TASKS:
        lr_task = task if task in LR_TASKS else GRIDS.reference_task
        for method in NEW_METHODS:
            lr = tuned.settled(lr_task, method, "constant")
            seeds = SEEDS if method == best else SEEDS[:1]
            cells += [
                Cell(
                    task,
                    method,
                    budget,
                    lr,
                    seed=seed,
                    eval_every=new_method_eval_every(method),
                    tags=("main",),
                )
                for seed in seeds
                if lr is not None
            ]

    def rank(cell: Cell) -> int:
        if cell.seed == 0 and cell.task in ALL_METHOD_TASKS:
            return 0
        return 1 if cell.optimizer == best else 2

    return sorted(cells, key=lambda c: (rank(c), c.seed))


def adamezo_defaults() -> tuple[tuple[float, float], int]:
    """AdaMeZO's default (betas, horizon), read from its signature."""
    parameters = inspect.signature(AdaMeZO).parameters
    return tuple(parameters["betas"].default), parameters["horizon"].default


def at_tuned_lr(
    tuned: LrChoice,
    task: str,
    budget: int,
    settings: Sequence[dict[str, Any]],
    optimizers: Sequence[str] = tuple(LR_GRIDS),
) -> list[Cell]:
    """One cell per setting (a dict of Cell fields) and optimizer, the optimizers within each
    setting, each at the optimizer's tuned constant lr unless the setting names its own."""
    return [
        Cell(task, optimizer, budget, **({"lr": tuned.lr(task, optimizer, "constant")} | s))
        for s in settings
        for optimizer in optimizers
    ]


def untested(tag: str, settings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The settings as untested cells of the table ``tag``."""
    return [s | {"test": False, "tags": (tag,)} for s in settings]


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
    return at_tuned_lr(tuned, task, budget, untested("betas", settings), ["adamezo"])


def horizon_table(tuned: LrChoice, budget: int = 300, task: str = "sst2") -> list[Cell]:
    _, default = adamezo_defaults()
    settings = [{"horizon": None if k == default else k} for k in (1, 2, 5, 10, 20, 40)]
    return at_tuned_lr(tuned, task, budget, untested("horizon", settings), ["adamezo"])


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
    ran = matching(records, tag="ablation", finished=True, task=task, preset="reference")
    reference = {r["lr"]: r["best_dev_loss"] for r in ran}
    lrs = sorted(set(REFERENCE_LRS) | set(reference))
    grown = past_the_edge(reference, REFERENCE_LRS)
    if grown is not None:
        lrs.append(grown)
    published = untested("ablation", [{"lr": lr, "preset": "reference"} for lr in lrs])
    mus = untested("ablation", [{"perturbation_scale": mu} for mu in ABLATION_MUS])
    return at_tuned_lr(tuned, task, budget, published, ["adamezo"]) + at_tuned_lr(
        tuned, task, budget, mus
    )


HOLES = "holes"
HOLES_TASK = GRIDS.reference_task
HOLE_METHODS = ("hizoo", "zo-adam", "meazo")
"""The methods that borrow a tuned lr (``LR_LIKE``) and get a grid of their own in the holes
table. MeZO-switch gets none: η cancels out of its step (each update is rescaled to the norm
AdaMeZO's run logged; lr scales only the weight decay, 0 here), so every lr is the same run."""
HOLE_BETAS = ((0.7, 0.0), (0.9, 0.0))
"""The betas table's cells without a second moment that the first round left out."""


def borrowed_lrs(tuned: LrChoice, budget: int = 300) -> dict[str, float]:
    """Each hole method's lr in Table 3 on SST-2 (the tuned lr of the method it is like), once
    that method's grid has settled: a grid centred on a provisional lr would move."""
    return {
        method: table3_cell(tuned, HOLES_TASK, method, budget).lr
        for method in HOLE_METHODS
        if tuned.settled(HOLES_TASK, LR_LIKE[method], "constant") is not None
    }


def hole_cell(tuned: LrChoice, method: str, lr: float, budget: int = 300) -> Cell:
    """The cell of ``method``'s own grid at ``lr``: its Table-3 cell on SST-2 (seed 0) at that lr,
    untested; at the borrowed lr, Table 3's tested cell itself. A tested cell trained as its
    untested twin does (``test`` only adds a test evaluation after training), so that run is
    the grid's centre and nothing trains twice."""
    table3 = table3_cell(tuned, HOLES_TASK, method, budget)
    return replace(table3, lr=lr, test=lr == table3.lr, tags=(HOLES,))


def holes_choice(tuned: LrChoice, records: Sequence[dict[str, Any]], budget: int = 300) -> LrChoice:
    """The hole methods' own grids: planned :func:`centred_grid` around the borrowed lr, read from
    the finished cells that are runs of a grid, tested or not (matched by cell id), grown past an
    edge best by :class:`LrChoice`'s rule. Their book and tag are their own: the study's lr
    choice (:func:`lr_choice`, tag ``lr``) never reads these cells, so no other table's lr or
    cell changes with them."""
    centres = borrowed_lrs(tuned, budget)
    runs = []
    for r in matching(records, finished=True, task=HOLES_TASK):
        if r["optimizer"] in centres:
            cell = hole_cell(tuned, r["optimizer"], r["lr"], budget)
            if r["id"] in (cell.id, replace(cell, test=not cell.test).id):
                runs.append(r | {"tags": [HOLES]})
    grids = {method: centred_grid(lr) for method, lr in centres.items()}
    return LrChoice(runs, GridBook(grids=grids, tag=HOLES))


def holes_table(
    tuned: LrChoice, records: Sequence[dict[str, Any]], budget: int = 300
) -> list[Cell]:
    """The first round's holes (seed 0, SST-2, untested): HiZOO's, ZO-Adam's and MEAZO's own lr
    grids, each centred on the lr it borrows (:func:`holes_choice`; the borrowed value is Table
    3's cell), in the order that informs first: a step past an edge where the loss still falls
    into it, the values one step either side of the borrowed lr, the far end, the growth past
    an edge best; then the β₂ = 0 cells at β₁ 0.7 and 0.9 and μ 10x down and up, as the betas
    and ablation tables plan them (a worker of either table runs the same cells)."""
    choice = holes_choice(tuned, records, budget)

    def make(task: str, method: str, lr: float) -> Cell:
        return hole_cell(tuned, method, lr, budget)

    cells = grid_cells(choice, HOLES_TASK, dict(choice.book.grids), (1, 0, 2, 3), make)
    cells += [make(e.task, e.optimizer, e.lr) for e in choice.extensions()]
    cells += [
        c for c in ablation_table(tuned, records, budget) if c.perturbation_scale in ABLATION_MUS
    ]
    cells += [c for c in betas_table(tuned, budget) if c.betas in HOLE_BETAS]
    return list(dict.fromkeys(cells))


LONG_BUDGET = 2000
LONG_EVAL_EVERY = 50
LONG_EVAL_PASSES = LONG_EVAL_EVERY * 2
"""The long cells evaluate every 100 forward passes: MeZO's and AdaMeZO's 50 steps, the steps
nearest to that for a method with another number of passes per step."""
LONG_TASKS = ("sst2", "trec")


def long_table(
    tuned: LrChoice, records: Sequence[dict[str, Any]], budget: int = LONG_BUDGET
) -> list[Cell]:
    """MeZO, AdaMeZO and, once chosen, the best new method (:func:`best_new_method`) over a
    budget several times the lr grids' (dev loss every 100 forward passes).

    Per task (SST-2 first): each method at its tuned constant lr and at a third of it (seed 0);
    once both have finished, seeds 1 and 2 at the better of the two, then seed 0 with a linear
    decay at that lr."""

    def cell(task: str, optimizer: str, lr: float, **kwargs: Any) -> Cell:
        every = steps_between(optimizer, LONG_EVAL_PASSES)
        return Cell(task, optimizer, budget, lr, eval_every=every, tags=("long",), **kwargs)

    done = {r["id"]: r for r in matching(records, tag="long", finished=True)}
    best = best_new_method(tuned)
    methods = [*LR_GRIDS, *([best] if best is not None else [])]
    cells = []
    for task in LONG_TASKS:
        first = {m: tuned.lr(task, m, "constant") for m in methods}
        candidates = {
            m: [cell(task, m, lr), cell(task, m, step_lr(lr, -1))] for m, lr in first.items()
        }
        cells += [c for pair in zip(*candidates.values(), strict=True) for c in pair]
        for optimizer, pair in candidates.items():
            runs = [done.get(c.id) for c in pair]
            if None in runs:
                continue
            best_cell = min(zip(pair, runs, strict=True), key=lambda p: p[1]["best_dev_loss"])[0]
            cells += [cell(task, optimizer, best_cell.lr, seed=seed) for seed in SEEDS[1:]]
            cells.append(cell(task, optimizer, best_cell.lr, lr_schedule="linear"))
    # SST-2 whole first (the 3-seed comparison the report needs), then TREC
    return sorted(cells, key=lambda c: (c.task != "sst2", c.lr_schedule != "constant", c.seed))


PRECISION_TASK = "sst2"
PRECISION = "bf16"


def precision_table(tuned: LrChoice, budget: int = 300, task: str = PRECISION_TASK) -> list[Cell]:
    """MeZO and AdaMeZO at their tuned constant lr, seeds 0-2, with the forward passes under
    bf16 autocast (float32 weights): the equal-results check of mixed precision. Their float32
    twins (the same cell without ``mixed_precision``) are Table 3's cells; the report compares
    the two when both have finished."""
    settings = [
        {"seed": seed, "mixed_precision": PRECISION, "tags": ("precision",)} for seed in SEEDS
    ]
    return at_tuned_lr(tuned, task, budget, settings)


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


# --------------------------------------------------------------------------------- the study


def table_cells(name: str, results: Path, budgets: dict[str, int]) -> list[Cell]:
    """The cells table ``name`` plans now, given the cells published in ``results``."""
    records = known_records(results)
    tuned = lr_choice(records)
    if name == "lr":
        # each task's grid, the grid's extensions, then its extra seeds
        cells = lr_table(budgets["lr"]) + [
            c
            for c in extensions(tuned, budgets["lr"])
            if c.lr_schedule == "constant" and c.optimizer in LR_GRIDS
        ]
        cells += seeds_table(tuned, budgets["lr"])
        return sorted(cells, key=lambda c: (c.task != "sst2", "seeds" in c.tags))
    if name in ("main", "methods"):
        if name == "main":
            cells = main_table(tuned, budgets["main"])
        else:
            # the grids first: they gate every Table 3 cell and the choice of the best method
            cells = methods_table(tuned, budgets["lr"]) + new_methods_main(tuned, budgets["main"])
        # cells that only replay a finished run first: minutes each, and they complete seeds
        return sorted(cells, key=lambda c: not by_replay(c, results))
    tables: dict[str, Callable[[], list[Cell]]] = {
        "schedule": lambda: schedule_table(tuned, budgets["lr"]),
        "betas": lambda: betas_table(tuned, budgets["lr"]),
        "horizon": lambda: horizon_table(tuned, budgets["lr"]),
        "ablation": lambda: ablation_table(tuned, records, budgets["lr"]),
        "long": lambda: long_table(tuned, records),
        "gpu-long": lambda: gpu_long_table(tuned),
        "precision": lambda: precision_table(tuned, budgets["main"]),
        "holes": lambda: holes_table(tuned, records, budgets["lr"]),
    }
    if name not in tables:
        raise ValueError(f"table must be one of {TABLES}, got {name!r}")
    return tables[name]()


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
    "holes",
)


def plan(
    name: str,
    results: Path,
    budgets: dict[str, int],
    seconds_per_pass: float,
    only: Sequence[str] = (),
) -> str:
    """The table's cells, one line each (done or to do, the estimated time), and the total."""
    lines = []
    total = 0.0
    for cell in selected(table_cells(name, results, budgets), only):
        done = finished(results, cell)
        replayed = not done and by_replay(cell, results)
        cost = 0.0 if done or replayed else cell.budget * seconds_per_pass
        total += cost
        note = " (replay + test)" if replayed else ""
        lines.append(f"{'done ' if done else 'to do'}  {cell.id}  ~{cost / 60:.0f} min{note}")
    lines.append(f"estimated time left: {total / 3600:.1f} h (training passes only)")
    return "\n".join(lines)


PROTOCOL_FLAGS = ("batch_size", "n_train", "n_dev", "n_test", "eval_every", "max_length")


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
    parser.add_argument("--max-cells", type=int, default=None, help="cells this worker runs")
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
    for name in PROTOCOL_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    _add_sharing_flags(parser.add_argument_group("workers sharing the study"))
    return parser.parse_args(argv)


def _add_sharing_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--storage",
        default=None,
        help="the workers' shared Optuna storage, an SQLAlchemy URL (default: an SQLite file, "
        "RUNS/study.db; postgresql://... or mysql://... to share it between machines)",
    )
    group.add_argument("--study-name", default=Place.study_name)
    group.add_argument(
        "--heartbeat-interval",
        type=int,
        default=Place.heartbeat_interval,
        help="seconds between a running cell's heartbeats",
    )
    group.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="seconds without a heartbeat after which another worker takes the cell over "
        "(default: twice the interval)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    budgets = {"lr": args.lr_budget, "main": args.main_budget}
    if args.command == "plan":
        print(plan(args.table, args.results, budgets, args.seconds_per_pass, args.only))
        return 0
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the workers print their own lines
    overrides = {name: getattr(args, name) for name in PROTOCOL_FLAGS}
    protocol = replace(
        Protocol(
            model=args.model, device=args.device, data_dir=args.data_dir, num_layers=args.num_layers
        ),
        **{name: value for name, value in overrides.items() if value is not None},
    )
    place = Place(
        runs=args.runs,
        results=args.results,
        storage=args.storage,
        study_name=args.study_name,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
    )
    run_cells(
        lambda: selected(table_cells(args.table, args.results, budgets), args.only),
        protocol,
        place,
        max_cells=args.max_cells,
        keep_weights=args.keep_weights,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
