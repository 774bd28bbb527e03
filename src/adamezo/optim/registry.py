"""The one table of optimizers by name: class, options, default learning rates, how to build one.

Every user of optimizer names (the fine-tuning CLI and config, the toy experiments, ``ZOTrainer``)
reads this table. What differs between optimizers is said here as data (which options each takes,
how ``betas`` map onto its arguments, which argument it cannot do without), so no code elsewhere
branches on an optimizer's name.

Learning rates are not interchangeable: MeZO's step is lr·p·z and
grows with |p|, while AdaMeZO's and ZO-Adam's normalised updates make lr a per-coordinate step size,
as in Adam. So every optimizer has its own default per tuning mode, and μ has one per tuning mode
(MeZO's settings: full 1e-3, LoRA 1e-2, prefix 1e-1). AdaMeZO's LoRA default was tuned on
SmolLM2-135M and Rotten Tomatoes (benchmarks/results/demo_tuning.md: 3e-3 barely moved the dev loss
in 20 steps, 3e-2 diverged); the other values follow the scale of the MeZO paper, untuned: tune lr
over a grid for any comparison.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adamezo.optim.adamezo import AdaMeZO
from adamezo.optim.base import ZerothOrderOptimizer
from adamezo.optim.fzoo import FZOO
from adamezo.optim.hizoo import HiZOO
from adamezo.optim.lozo import LOZO
from adamezo.optim.meazo import MEAZO
from adamezo.optim.mezo import MeZO
from adamezo.optim.mezo_switch import MeZOSwitch
from adamezo.optim.zo_adam import ZOAdam
from adamezo.optim.zo_muon import ZOMuon

TUNING_MODES = ("full", "lora", "prefix")
"""Which parameters a fine-tuning run trains: all weights, LoRA adapters or a prefix."""

DEFAULT_PERTURBATION_SCALE: Mapping[str, float] = {"full": 1e-3, "lora": 1e-2, "prefix": 1e-1}
"""μ per tuning mode (the MeZO paper's settings), shared by every zeroth-order optimizer."""

ZEROTH_ORDER_SETTINGS = (
    "perturbation_scale",
    "seed",
    "direction_seeds",
    "kernel",
    "perturbation",
)
"""Constructor arguments every zeroth-order optimizer takes and first-order ones ignore."""

BetasMap = Callable[[tuple[float, ...]], dict[str, Any]]
"""Turns (β₁, β₂) into the optimizer's own keyword arguments."""


def both_betas(betas: tuple[float, ...]) -> dict[str, Any]:
    """(β₁, β₂) passed as ``betas``, as Adam-like optimizers take them."""
    return {"betas": tuple(betas)}


def second_beta(betas: tuple[float, ...]) -> dict[str, Any]:
    """β₂ alone, as ``beta``: the decay of MEAZO's one scalar second moment."""
    return {"beta": betas[-1]}


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer as the rest of the library sees it (see the module docstring)."""

    name: str
    label: str
    cls: type[torch.optim.Optimizer]
    default_lr: Mapping[str, float]
    """lr per tuning mode."""
    zeroth_order: bool = True
    betas: BetasMap | None = None
    """How (β₁, β₂) become keyword arguments; None: the optimizer takes no betas."""
    options: tuple[str, ...] = ()
    """Optional arguments a run may set besides lr, weight decay, betas and the shared ones."""
    required: Mapping[str, str] = field(default_factory=dict)
    """Arguments the optimizer cannot be built without, each with what it is."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Arguments always passed (a variant of the class, e.g. the toy's HiZOO, or LOZO-M's
    momentum); one that is also in ``options`` is a default a run may override."""

    @property
    def uses_betas(self) -> bool:
        return self.betas is not None

    @property
    def uses_horizon(self) -> bool:
        return "horizon" in self.options

    def accepts(self, option: str) -> bool:
        return option in self.options or option in self.required

    def option_default(self, option: str) -> Any:
        """What the optimizer uses for ``option`` when a run leaves it unset."""
        if option in self.fixed:
            return self.fixed[option]
        return inspect.signature(self.cls.__init__).parameters[option].default

    @property
    def passes_per_step(self) -> int:
        """Forward passes one step costs at the optimizer's defaults (``fixed`` included), read
        from its estimator without building one; a first-order optimizer's forward and backward
        pass count as 2."""
        if not issubclass(self.cls, ZerothOrderOptimizer):
            return 2
        arguments = {
            **self.fixed,
            **{option: self.option_default(option) for option in self.options},
        }
        return len(self.cls.estimator_at(arguments).offsets)

    def check_options(self, betas: Sequence[float] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments ``betas`` and ``options`` (None: not set) make for this
        optimizer; ValueError naming the first one it does not take or the one it lacks."""
        resolved: dict[str, Any] = {}
        if betas is not None:
            if self.betas is None:
                raise ValueError(f"betas: optimizer {self.name!r} takes no betas")
            resolved.update(self.betas(as_betas(betas)))
        for option, value in options.items():
            if value is None:
                continue
            if not self.accepts(option):
                raise ValueError(f"{option}: optimizer {self.name!r} takes no {option}")
            resolved[option] = value
        for option, meaning in self.required.items():
            if option not in resolved:
                raise ValueError(f"optimizer {self.name!r} needs {option}: {meaning}")
        return resolved

    def build(
        self,
        params: Any,
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: Sequence[float] | None = None,
        **settings: Any,
    ) -> torch.optim.Optimizer:
        """The optimizer over ``params`` (tensors or param-group dicts).

        ``settings`` holds the shared zeroth-order arguments (``perturbation_scale``, ``seed``,
        ``direction_seeds``, ``kernel``; a first-order optimizer ignores them: its gradient is
        exact) and the optimizer's own options; None means the optimizer's default.
        """
        shared = {k: settings.pop(k) for k in ZEROTH_ORDER_SETTINGS if k in settings}
        kwargs = self.check_options(betas, **settings)
        if self.zeroth_order:
            kwargs.update({k: v for k, v in shared.items() if v is not None})
        return self.cls(params, lr=lr, weight_decay=weight_decay, **{**self.fixed, **kwargs})

    def variant(self, **changes: Any) -> OptimizerEntry:
        """A copy with some fields changed (e.g. other fixed arguments or another label)."""
        return type(self)(**{**self.__dict__, **changes})


def as_betas(value: Sequence[float] | None) -> tuple[float, ...] | None:
    """``betas`` as a tuple (JSON and argparse give lists), None staying None."""
    return None if value is None else tuple(value)


def _entries(*entries: OptimizerEntry) -> dict[str, OptimizerEntry]:
    return {entry.name: entry for entry in entries}


# Full-tuning lrs of MeZO and AdaMeZO are the study's choice (docs/results.md): on SST-2 and TREC
# alike, SmolLM2-135M at 300 forward passes, grids 3x apart with an interior best.
OPTIMIZERS: dict[str, OptimizerEntry] = _entries(
    OptimizerEntry(
        "adamezo",
        "AdaMeZO",
        AdaMeZO,
        {"full": 1e-3, "lora": 1e-2, "prefix": 1e-2},
        betas=both_betas,
        options=("horizon", "preset", "warmup_steps"),
    ),
    OptimizerEntry("mezo", "MeZO", MeZO, {"full": 3e-5, "lora": 1e-4, "prefix": 1e-3}),
    OptimizerEntry(
        "zo-adam", "ZO-Adam", ZOAdam, {"full": 2e-5, "lora": 1e-3, "prefix": 1e-2}, betas=both_betas
    ),
    OptimizerEntry(
        "meazo", "MEAZO", MEAZO, {"full": 2e-5, "lora": 1e-3, "prefix": 1e-2}, betas=second_beta
    ),
    OptimizerEntry("hizoo", "HiZOO", HiZOO, {"full": 1e-5, "lora": 1e-4, "prefix": 1e-3}),
    OptimizerEntry(
        "mezo-switch",
        "MeZO-switch",
        MeZOSwitch,
        {"full": 1e-5, "lora": 1e-4, "prefix": 1e-3},
        required={
            "norm_schedule": "the update norms of an AdaMeZO run (pass that run's log.jsonl)"
        },
    ),
    # The new methods' lrs are untuned starting points for SmolLM2-135M: FZOO's step is normalised
    # (|u| per coordinate about 1/√N), so it starts at AdaMeZO's tuned lr.
    OptimizerEntry(
        "fzoo",
        "FZOO",
        FZOO,
        {"full": 1e-3, "lora": 1e-2, "prefix": 1e-2},
        options=("queries",),
    ),
    # LOZO's step is p·U Vᵀ, about r times MeZO's in norm: it starts at MeZO's lr over ~r.
    OptimizerEntry(
        "lozo",
        "LOZO",
        LOZO,
        {"full": 1e-5, "lora": 3e-5, "prefix": 3e-4},
        options=("rank", "lazy_interval", "momentum"),
    ),
    OptimizerEntry(
        "lozo-m",
        "LOZO-M",
        LOZO,
        {"full": 1e-5, "lora": 3e-5, "prefix": 3e-4},
        options=("rank", "lazy_interval", "momentum"),
        fixed={"momentum": 0.9},
    ),
    # ZO-Muon's matrix step P·O has spectral norm about 1 whatever the gradient: the published
    # code's lr 1e-2 (OPT-13B) is the starting point.
    OptimizerEntry(
        "zo-muon",
        "ZO-Muon",
        ZOMuon,
        {"full": 1e-2, "lora": 1e-2, "prefix": 1e-2},
        options=("rank", "queries", "resample_interval", "vector_lr_scale"),
    ),
    OptimizerEntry(
        "fo-adam",
        "first-order Adam (backprop)",
        torch.optim.Adam,
        {"full": 1e-5, "lora": 1e-4, "prefix": 1e-2},
        zeroth_order=False,
        betas=both_betas,
    ),
)
"""Every optimizer by name, in the order the CLI and the documentation list them."""


def optimizer_entry(name: str) -> OptimizerEntry:
    """The entry called ``name``; ValueError listing the names if there is none."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name]


def zeroth_order_classes(*, standalone: bool = True) -> dict[str, type[ZerothOrderOptimizer]]:
    """The zeroth-order classes by name; with ``standalone``, only those that need no
    required argument (so a caller can build them from lr and the shared options alone)."""
    return {
        name: entry.cls
        for name, entry in OPTIMIZERS.items()
        if issubclass(entry.cls, ZerothOrderOptimizer) and not (standalone and entry.required)
    }
