"""Learning-rate sweeps on an Optuna study: each trial one fine-tuning run directory, the trials
shared by any number of workers through the study's storage and resumed from their checkpoints.

A sweep is a grid of points (optimizer, lr, seed). Per optimizer, the first seed runs the lr grid
(:mod:`adamezo.finetune.lr_grid`: the given lrs, or ``auto``: four values 3x apart around the
optimizer's default lr, grown past an edge best until it is interior); once it has settled, the
other seeds run at its best lr. The points live in the study as *enqueued* trials (Optuna's fixed
parameters); the study's sampler invents nothing (:class:`QueueOnlySampler`). A worker loops: fail
the trials whose heartbeat stopped (the retry callback puts them back in the queue), enqueue the
points the grid rule wants that no trial holds, run one queued trial, and wait while other workers
run the last ones. A trial trains its run directory with :func:`adamezo.finetune.run_finetune`,
resuming it from its checkpoint when an earlier attempt was cut off, so a killed worker's trial
ends bit for bit as an uninterrupted one would; a finished run directory is read, not retrained.
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamezo.finetune.lr_grid import GridState, best_lr, grid_state
from adamezo.finetune.models import check_model_available
from adamezo.finetune.objective import load_data
from adamezo.finetune.sweep_runs import train_trial
from adamezo.finetune.sweep_settings import SweepSettings, as_current, lr_key

SETTINGS_ATTR = "adamezo_sweep"
"""The study's user attribute holding the settings it was created with."""
LR_RANGE = (1e-12, 1e3)
"""The lr parameter's declared range (Optuna wants one; the values come from the queue)."""
MAX_SEED = 2**31 - 1
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
"""A point held by a trial in one of these states is not enqueued again."""
Point = tuple[str, float, int]
"""(optimizer, lr, seed)."""


class QueueOnlySampler(optuna.samplers.BaseSampler):
    """A sampler that invents no values: every trial runs the point it was enqueued with. A trial
    that finds the queue empty (another worker took the last point) is pruned unrun."""

    def infer_relative_search_space(self, study, trial) -> dict[str, Any]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        raise optuna.TrialPruned("no queued point left: another worker took the last one")


# ------------------------------------------------------------------------------------- study


def open_study(settings: SweepSettings) -> optuna.Study:
    """The sweep's study, created on first use; ValueError if its storage cannot be opened or it
    was created with other settings."""
    url = settings.storage_url()
    # Workers starting together on a new SQLite file may race to create its tables: try again.
    attempts = 3 if url.startswith("sqlite") else 1
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats and retries are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_options(url),
                    heartbeat_interval=settings.heartbeat_interval,
                    grace_period=settings.grace_period,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
                )
            study = optuna.create_study(
                storage=storage,
                study_name=settings.name(),
                direction="minimize",
                sampler=QueueOnlySampler(),
                load_if_exists=True,
            )
            break
        except Exception as error:  # a driver, URL or connection error: all mean "cannot open"
            if attempt + 1 < attempts:
                time.sleep(1.0 + attempt)
                continue
            raise ValueError(
                f"storage {_shown(url)!r}: cannot open the sweep's study there "
                f"({type(error).__name__}: {error})"
            ) from error
    _check_settings(study, settings)
    return study


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # wait for another worker's write
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 15}}  # an unreachable host fails soon
    return {}


def _shown(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _check_settings(study: optuna.Study, settings: SweepSettings) -> None:
    mine = settings.identity()
    theirs = study.user_attrs.get(SETTINGS_ATTR)
    if theirs is None:
        study.set_user_attr(SETTINGS_ATTR, mine)
        return
    theirs = as_current(theirs)
    if theirs != mine:
        changes = _differences(theirs, mine)
        raise ValueError(
            f"study {settings.name()!r} in {_shown(settings.storage_url())!r} is a sweep with "
            f"other settings ({'; '.join(changes[:6])}): run it with its own settings, or give "
            "this sweep another --study-name (or --output-dir)"
        )


def _differences(theirs: dict[str, Any], mine: dict[str, Any], prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(theirs) | set(mine)):
        old, new = theirs.get(key), mine.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix.removeprefix('runs.')}{key}: {old!r} -> {new!r}")
    return changes


def point_of(trial: FrozenTrial) -> Point | None:
    """The (optimizer, lr, seed) a trial holds (its queued values), None if it holds none."""
    params = trial.system_attrs.get("fixed_params") or trial.params
    if not {"optimizer", "lr", "seed"} <= set(params):
        return None
    return params["optimizer"], float(params["lr"]), int(params["seed"])


def _key(point: Point) -> tuple[str, str, int]:
    return point[0], lr_key(point[1]), point[2]


def finished_points(trials: Iterable[FrozenTrial]) -> dict[tuple[str, str, int], FrozenTrial]:
    """The first complete trial of each point."""
    done: dict[tuple[str, str, int], FrozenTrial] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        point = point_of(trial)
        if trial.state == TrialState.COMPLETE and point is not None:
            done.setdefault(_key(point), trial)
    return done


def grid_of(
    settings: SweepSettings, optimizer: str, trials: Sequence[FrozenTrial]
) -> tuple[GridState, dict[float, float]]:
    """The state of ``optimizer``'s lr grid (first seed) and its finished lr -> best dev loss."""
    seed = settings.seeds[0]
    points = [(point_of(t), t) for t in trials if t.state in LIVE]
    held = [p for p, _ in points if p is not None and p[0] == optimizer and p[2] == seed]
    losses = {
        float(t.params["lr"]): float(t.value)
        for (o, _, s), t in finished_points(trials).items()
        if o == optimizer and s == seed
    }
    state = grid_state(
        settings.planned(optimizer),
        [lr for _, lr, _ in held],
        losses,
        grow=settings.lrs is None,
    )
    return state, losses


def wanted_points(settings: SweepSettings, trials: Sequence[FrozenTrial]) -> list[Point]:
    """The points the grid rule wants now that no live trial holds, optimizers interleaved."""
    held = {_key(p) for t in trials if t.state in LIVE and (p := point_of(t)) is not None}
    per_optimizer = []
    for optimizer in settings.optimizers:
        state, _ = grid_of(settings, optimizer, trials)
        lrs = list(settings.planned(optimizer)) + ([state.next] if state.next else [])
        points = [(optimizer, lr, settings.seeds[0]) for lr in lrs]
        if state.settled and state.lr is not None:
            points += [(optimizer, state.lr, seed) for seed in settings.seeds[1:]]
        per_optimizer.append(points)
    wanted = []
    for row in range(max(map(len, per_optimizer))):
        wanted += [points[row] for points in per_optimizer if row < len(points)]
    return [p for p in wanted if _key(p) not in held]


# ---------------------------------------------------------------------------------- trials


class Worker:
    """One process taking part in a sweep (see the module docstring)."""

    def __init__(self, settings: SweepSettings, say: Callable[[str], None] = print) -> None:
        self.settings, self.say = settings, say
        self.trained: list[Point] = []

    def run(self) -> optuna.Study:
        """Check everything, open the study and work until the sweep is done."""
        settings = self.settings
        settings.validate()
        first = settings.trial_config(
            settings.optimizers[0], settings.planned(settings.optimizers[0])[0], settings.seeds[0]
        )
        check_model_available(first.model)
        load_data(replace(first, device="cpu").resolved())  # the task and data exist and parse
        settings.directory().mkdir(parents=True, exist_ok=True)
        study = open_study(settings)
        poll = min(5.0, float(settings.heartbeat_interval))
        waiting_said = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            for optimizer, lr, seed in wanted_points(settings, study.get_trials(deepcopy=False)):
                study.enqueue_trial({"optimizer": optimizer, "lr": lr, "seed": seed})
            states = [t.state for t in study.get_trials(deepcopy=False)]
            if TrialState.WAITING in states:
                study.optimize(self._objective, n_trials=1)
                waiting_said = False
            elif TrialState.RUNNING in states:
                if not waiting_said:
                    self.say(
                        f"[sweep] waiting for {states.count(TrialState.RUNNING)} running "
                        "trial(s) of other workers"
                    )
                    waiting_said = True
                time.sleep(poll)
            else:
                return study

    def _objective(self, trial: optuna.Trial) -> float:
        settings = self.settings
        optimizer = trial.suggest_categorical("optimizer", list(settings.optimizers))
        lr = trial.suggest_float("lr", *LR_RANGE, log=True)
        seed = trial.suggest_int("seed", 0, MAX_SEED)
        point = (optimizer, lr, seed)
        other = first_holder(trial.study.get_trials(deepcopy=False), trial.number, point)
        if other is not None:  # two workers enqueued the same point at once
            trial.set_user_attr("duplicate_of", other)
            raise optuna.TrialPruned(f"trial {other} holds the same point")
        config = settings.trial_config(optimizer, lr, seed)
        trial.set_user_attr("run_dir", config.output_dir)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        self.say(
            f"[sweep] trial {trial.number}: {optimizer} lr {lr:g} seed {seed} -> "
            f"{config.output_dir}"
        )
        outcome = train_trial(config)
        for name, value in outcome.items():
            trial.set_user_attr(name, _json_number(value))
        if outcome["trained"]:
            self.trained.append(point)
        how = "diverged" if outcome["diverged"] else f"best dev loss {outcome['best_dev_loss']:.4g}"
        resumed = ", resumed from its checkpoint" if outcome["resumed"] else ""
        self.say(f"[sweep] trial {trial.number}: {how}{resumed}")
        return float(outcome["best_dev_loss"])


def first_holder(trials: Iterable[FrozenTrial], number: int, point: Point) -> int | None:
    """Another trial that holds ``point`` and goes first: a complete one, or a queued or running
    one of a lower number (the lowest-numbered live trial of a point is the one that runs)."""
    for trial in sorted(trials, key=lambda t: t.number):
        other = point_of(trial)
        if trial.number == number or other is None or _key(other) != _key(point):
            continue
        if trial.state == TrialState.COMPLETE or (trial.state in LIVE and trial.number < number):
            return trial.number
    return None


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------- results


def sweep_results(settings: SweepSettings, study: optuna.Study) -> dict[str, Any]:
    """``{"trials": [...], "best": {optimizer: {...}}}`` of a sweep (the content of sweep.json):
    one entry per finished point, and per optimizer the grid's best lr, its run directory and
    its seeds."""
    trials = study.get_trials(deepcopy=False)
    rows = []
    for (optimizer, _, seed), trial in finished_points(trials).items():
        attrs = trial.user_attrs
        rows.append(
            {
                "optimizer": optimizer,
                "lr": float(trial.params["lr"]),
                "seed": seed,
                "best_dev_loss": trial.value if math.isfinite(trial.value) else None,
                "diverged": attrs.get("diverged", False),
                "best_step": attrs.get("best_step"),
                "dev_metrics": attrs.get("dev_metrics", {}),
                "forward_passes_to_best": attrs.get("forward_passes_to_best"),
                "run_dir": attrs.get("run_dir"),
                "trial": trial.number,
            }
        )
    order = {name: i for i, name in enumerate(settings.optimizers)}
    rows.sort(key=lambda r: (order.get(r["optimizer"], len(order)), r["seed"], r["lr"]))
    best = {}
    for optimizer in settings.optimizers:
        state, losses = grid_of(settings, optimizer, trials)
        lr = state.lr if state.settled else best_lr(losses)
        if lr is None:
            continue
        mine = [r for r in rows if r["optimizer"] == optimizer and lr_key(r["lr"]) == lr_key(lr)]
        chosen = next(r for r in mine if r["seed"] == settings.seeds[0])
        seeds = {str(r["seed"]): r["best_dev_loss"] for r in mine}
        finite = [v for v in seeds.values() if v is not None]
        best[optimizer] = {
            "lr": lr,
            "run_dir": chosen["run_dir"],
            "best_dev_loss": chosen["best_dev_loss"],
            "dev_metrics": chosen["dev_metrics"],
            "interior": state.interior,
            "settled": state.settled,
            "seeds": seeds,
            "mean_best_dev_loss": sum(finite) / len(finite) if finite else None,
        }
    unfinished = (TrialState.WAITING, TrialState.RUNNING)
    pending = wanted_points(settings, trials) + [t for t in trials if t.state in unfinished]
    return {
        "study": settings.name(),
        "storage": _shown(settings.storage_url()),
        "settings": settings.identity(),
        "complete": not pending,
        "trials": rows,
        "best": best,
    }
