"""What a cell of an experiment is (one fine-tuning run, or a zero-shot evaluation), its id and
its ``cell.json``, and the settings every cell of an experiment shares (:class:`Protocol`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from typing import Any

from adamezo._checks import check_betas, check_choice, check_float, check_int
from adamezo.finetune.config import LR_SCHEDULES
from adamezo.finetune.precision import AUTOCAST_DTYPES
from adamezo.optim.adamezo import PRESETS as ADAMEZO_PRESETS
from adamezo.optim.registry import OPTIMIZERS, TUNING_MODES, optimizer_entry

ZERO_SHOT = "zero-shot"
"""The optimizer name of a cell that trains nothing: the base model evaluated on dev and test."""


def passes_per_step(optimizer: str) -> int:
    """Forward passes one step of ``optimizer`` costs in a cell: its registry entry's at the
    optimizer's defaults (2 for two perturbed passes or first-order Adam's forward and backward;
    HiZOO 3, FZOO 9, ZO-Muon 5); a zero-shot cell, which takes no step, counts 2. ValueError for
    an optimizer the registry does not know."""
    return 2 if optimizer == ZERO_SHOT else optimizer_entry(optimizer).passes_per_step


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

    def __post_init__(self) -> None:
        """Refuse a cell no run can carry out: ValueError/TypeError naming the field and what
        it may hold."""
        if not isinstance(self.task, str):
            raise TypeError(f"task must be a str, got {type(self.task).__name__}")
        if not self.task:
            raise ValueError("task must be a non-empty str, got ''")
        check_choice("optimizer", self.optimizer, (ZERO_SHOT, *OPTIMIZERS))
        check_int("budget", self.budget, 0)
        check_float("lr", self.lr)
        check_int("seed", self.seed, 0)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("tuning", self.tuning, TUNING_MODES)
        for name in ("horizon", "eval_every"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.perturbation_scale is not None:
            check_float("perturbation_scale", self.perturbation_scale, 0.0, min_open=True)
        if self.preset is not None:
            check_choice("preset", self.preset, ADAMEZO_PRESETS)
        if self.mixed_precision is not None:
            check_choice("mixed_precision", self.mixed_precision, AUTOCAST_DTYPES)
        if not isinstance(self.test, bool):
            raise TypeError(f"test must be a bool, got {type(self.test).__name__}")
        if not isinstance(self.tags, tuple) or not all(isinstance(t, str) for t in self.tags):
            raise TypeError(f"tags must be a tuple of str, got {self.tags!r}")
        if self.follows is not None and not isinstance(self.follows, str):
            raise TypeError(f"follows must be a cell id (str) or None, got {self.follows!r}")
        if self.optimizer == ZERO_SHOT:
            self._check_zero_shot()
        else:
            self._check_training()

    def _check_zero_shot(self) -> None:
        """A zero-shot cell trains nothing: no budget, no lr."""
        if self.budget != 0:
            raise ValueError(
                f"budget must be 0 for a zero-shot cell (it trains nothing), got {self.budget!r}"
            )
        if self.lr != 0:
            raise ValueError(
                f"lr must be 0 for a zero-shot cell (it trains nothing), got {self.lr!r}"
            )

    def _check_training(self) -> None:
        """A trained cell: a budget of at least one step, lr > 0, and only the options its
        optimizer takes (the registry's entry says which)."""
        entry = optimizer_entry(self.optimizer)
        least = passes_per_step(self.optimizer)
        if self.budget < least:
            raise ValueError(
                f"budget must be >= {least} forward passes (one step of {self.optimizer}), "
                f"got {self.budget!r}"
            )
        check_float("lr", self.lr, 0.0, min_open=True)
        if self.betas is not None:
            if not isinstance(self.betas, tuple):
                raise TypeError(f"betas must be a tuple of 2 floats in [0, 1], got {self.betas!r}")
            check_betas("betas", self.betas)
        follows_a_run = "norm_schedule" in entry.required  # MeZO-switch's
        if follows_a_run and self.follows is None:
            raise ValueError(
                f"follows must name the AdaMeZO cell whose update norms a cell of {entry.name} "
                "follows, got None"
            )
        if not follows_a_run and self.follows is not None:
            raise ValueError(
                f"follows must be None for a cell of {entry.name} (it follows no other cell), "
                f"got {self.follows!r}"
            )
        entry.check_options(
            self.betas, horizon=self.horizon, preset=self.preset, norm_schedule=self.follows
        )

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
