"""What a cell of an experiment is (one fine-tuning run, or a zero-shot evaluation), its id and
its ``cell.json``, and the settings every cell of an experiment shares (:class:`Protocol`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from typing import Any

ZERO_SHOT = "zero-shot"
"""The optimizer name of a cell that trains nothing: the base model evaluated on dev and test."""
PASSES_PER_STEP = {"hizoo": 3, "fzoo": 9, "zo-muon": 5}
"""Forward passes per zeroth-order step, where not 2 (HiZOO: two perturbed and one clean pass;
FZOO: a clean pass and 8 queries; ZO-Muon: a clean pass and 4 queries, at their defaults)."""


def passes_per_step(optimizer: str) -> int:
    """Forward passes one step of ``optimizer`` costs in a cell (:data:`PASSES_PER_STEP`, else
    2: two perturbed passes, or first-order Adam's forward and backward)."""
    return PASSES_PER_STEP.get(optimizer, 2)


OPTIONAL_FIELDS = ("preset", "perturbation_scale", "eval_every", "mixed_precision")
"""Cell fields a cell.json leaves out when unset (the files from before they existed match)."""


@dataclass(frozen=True)
class Cell:
    """One fine-tuning run of an experiment; its :attr:`id` names its run directory."""

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
        """Optimizer steps in the budget: ``budget // passes per step``, at least 1."""
        return max(1, self.budget // passes_per_step(self.optimizer))

    @property
    def id(self) -> str:
        """The cell's name: its settings, each only where set, in a fixed order (a published
        cell's directory is named by it, so the format never changes)."""
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


def cell_to_json(cell: Cell, tags: Iterable[str] = ()) -> dict[str, Any]:
    """The cell as its cell.json holds it: every field but the unset optional ones, its tags
    joined with ``tags`` and sorted."""
    data = {k: v for k, v in asdict(cell).items() if k not in OPTIONAL_FIELDS or v is not None}
    return data | {"tags": sorted(set(cell.tags) | set(tags))}


def cell_from_json(data: dict[str, Any]) -> Cell:
    """The cell a cell.json (or :func:`cell_to_json`) describes."""
    data = dict(data)
    data["tags"] = tuple(data.get("tags", ()))
    if data.get("betas") is not None:
        data["betas"] = tuple(data["betas"])
    return Cell(**data)


def selected(cells: Iterable[Cell], patterns: Sequence[str]) -> list[Cell]:
    """The cells whose id matches one of the shell-style ``patterns`` (all cells if none), in
    their table's order: lets a worker take one slice of a table (``--only 'sst5-*'``)."""
    return [c for c in cells if not patterns or any(fnmatch(c.id, p) for p in patterns)]


@dataclass(frozen=True)
class Protocol:
    """Settings shared by every cell of an experiment (what its tables hold fixed)."""

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

    def identity(self) -> dict[str, Any]:
        """What every worker of one experiment must agree on: all but where it runs (device) and
        where its data lie on that machine (data_dir)."""
        data = asdict(self)
        for name in ("device", "data_dir"):
            data.pop(name)
        return data
