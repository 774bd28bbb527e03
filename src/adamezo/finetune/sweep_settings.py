"""What one learning-rate sweep is: the runs' shared settings, the optimizers, the lr grid, the
seeds and where its study and run directories live; checked before anything is opened."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adamezo._checks import check_int
from adamezo.finetune.config import ADDED_SETTINGS, NOT_PART_OF_THE_RUN, FinetuneConfig
from adamezo.finetune.lr_grid import auto_grid
from adamezo.optim.registry import optimizer_entry


@dataclass(frozen=True)
class SweepSettings:
    """One sweep: the runs' shared settings, the grid and where the study lives."""

    base: FinetuneConfig = field(default_factory=FinetuneConfig)
    """Every trial's run settings; each trial sets optimizer, lr, seed and output_dir."""
    optimizers: tuple[str, ...] = ("adamezo",)
    lrs: tuple[float, ...] | None = None
    """The lr grid as given (not grown); None: ``auto`` (see :func:`auto_grid`)."""
    seeds: tuple[int, ...] = (0,)
    """The first seed runs the lr grid, the others the grid's best lr."""
    output_dir: str | None = None
    """Default: runs/sweep-{task}-{tuning}."""
    storage: str | None = None
    """An SQLAlchemy URL (sqlite:///..., postgresql://..., mysql://...); default: sweep.db in
    ``output_dir``."""
    study_name: str | None = None
    """Default: the name of ``output_dir``."""
    heartbeat_interval: int = 60
    """Seconds between a running trial's heartbeats."""
    grace_period: int | None = None
    """Seconds without a heartbeat after which a running trial is retried (default 2x the
    interval)."""

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first bad setting; loads no model."""
        if not self.optimizers or len(set(self.optimizers)) != len(self.optimizers):
            raise ValueError(f"optimizers must be distinct names, got {self.optimizers!r}")
        for name in self.optimizers:
            optimizer_entry(name)
        if self.lrs is not None:
            if not self.lrs:
                raise ValueError("lrs must hold at least one learning rate, or be None (auto)")
            for lr in self.lrs:
                if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
                    raise ValueError(f"every lr must be a positive finite number, got {lr!r}")
            if len({lr_key(lr) for lr in self.lrs}) != len(self.lrs):
                raise ValueError(f"lrs must be distinct, got {self.lrs!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds!r}")
        for seed in self.seeds:
            check_int("seed", seed, 0)
        check_int("heartbeat_interval", self.heartbeat_interval, 1)
        if self.grace_period is not None:
            check_int("grace_period", self.grace_period, self.heartbeat_interval)
        if self.base.n_dev == 0:
            raise ValueError(
                "n_dev is 0: a sweep ranks learning rates by dev loss, so its budget must hold "
                "at least one dev example"
            )
        for optimizer in self.optimizers:
            self.trial_config(optimizer, self.planned(optimizer)[0], self.seeds[0]).validate()

    def planned(self, optimizer: str) -> tuple[float, ...]:
        """The grid's first values for ``optimizer``."""
        if self.lrs is not None:
            return tuple(self.lrs)
        return auto_grid(optimizer_entry(optimizer).default_lr[self.base.tuning])

    def directory(self) -> Path:
        if self.output_dir is not None:
            return Path(self.output_dir)
        config = replace(self.base, optimizer=self.optimizers[0], device="cpu").resolved()
        return Path("runs") / f"sweep-{config.task}-{config.tuning}"

    def run_dir(self, optimizer: str, lr: float, seed: int) -> Path:
        return self.directory() / "runs" / f"{optimizer}-lr{lr_key(lr)}-s{seed}"

    def trial_config(self, optimizer: str, lr: float, seed: int) -> FinetuneConfig:
        return replace(
            self.base,
            optimizer=optimizer,
            lr=lr,
            seed=seed,
            output_dir=str(self.run_dir(optimizer, lr, seed)),
            resume=False,
            overwrite=False,
        )

    def storage_url(self) -> str:
        if self.storage is not None:
            return self.storage
        return f"sqlite:///{(self.directory() / 'sweep.db').resolve()}"

    def name(self) -> str:
        return self.study_name or self.directory().resolve().name

    def identity(self) -> dict[str, Any]:
        """What two workers of one study must agree on (JSON types)."""
        runs = self.base.run_identity()
        for name in ("optimizer", "lr", "seed", "extra"):
            runs.pop(name, None)
        data = {
            "runs": runs,
            "optimizers": list(self.optimizers),
            "lrs": "auto" if self.lrs is None else list(self.lrs),
            "seeds": list(self.seeds),
        }
        return json.loads(json.dumps(data))


def as_current(identity: dict[str, Any]) -> dict[str, Any]:
    """A study's stored :meth:`SweepSettings.identity` as this version writes it: the run settings
    added since it was stored hold the value an older sweep meant (ADDED_SETTINGS)."""
    added = {k: v for k, v in ADDED_SETTINGS.items() if k not in NOT_PART_OF_THE_RUN}
    runs = {**added, **identity.get("runs", {})}
    return json.loads(json.dumps({**identity, "runs": runs}))


def lr_key(lr: float) -> str:
    """How an lr is named (run directories) and compared (points): 6 significant digits."""
    return f"{lr:.6g}"


def setting_name(path: str) -> str:
    """How a refusal names a setting of :meth:`SweepSettings.identity` (its dotted path): a run
    setting by its own name (``steps``, not ``runs.steps``), as the sweep's flags name it."""
    return path.removeprefix("runs.")
