"""Learning-rate sweeps on an Optuna study: each trial one fine-tuning run directory, the trials
shared by any number of workers through the study's storage and resumed from their checkpoints.

A sweep is a grid of points (optimizer, lr, seed). Per optimizer, the first seed runs the lr grid
(:mod:`adamezo.finetune.lr_grid`: the given lrs, or ``auto``: four values 3x apart around the
optimizer's default lr, grown past an edge best until it is interior); once it has settled, the
other seeds run at its best lr. The points are the trials of a shared queue
(:mod:`adamezo.finetune.trial_queue`: a point is enqueued with Optuna's fixed parameters, the
worker that pops it runs it, a trial whose heartbeat stopped is retried, and a worker waits while
others run the last points). A trial trains its run directory with
:func:`adamezo.finetune.run_finetune`, resuming it from its checkpoint when an earlier attempt was
cut off, so a killed worker's trial ends bit for bit as an uninterrupted one would; a finished run
directory is read, not retrained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamezo.finetune.lr_grid import GridState, best_lr, grid_state
from adamezo.finetune.models import check_model_available
from adamezo.finetune.objective import load_data
from adamezo.finetune.sweep_runs import train_trial
from adamezo.finetune.sweep_settings import SweepSettings, as_current, lr_key, setting_name
from adamezo.finetune.trial_queue import LIVE, QueueWorker, StudyAddress, held_keys, shown
from adamezo.finetune.trial_queue import open_study as open_queue_study

SETTINGS_ATTR = "adamezo_sweep"
"""The study's user attribute holding the settings it was created with."""
LR_RANGE = (1e-12, 1e3)
"""The lr parameter's declared range (Optuna wants one; the values come from the queue)."""
MAX_SEED = 2**31 - 1
Point = tuple[str, float, int]
"""(optimizer, lr, seed)."""


# ------------------------------------------------------------------------------------- study


def study_address(settings: SweepSettings) -> StudyAddress:
    """Where the sweep's study lives and the settings its workers must share."""
    return StudyAddress(
        storage=settings.storage_url(),
        name=settings.name(),
        identity=settings.identity(),
        identity_attr=SETTINGS_ATTR,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        what="sweep",
        other_name_hint="give this sweep another --study-name (or --output-dir)",
        as_current=as_current,
        setting_name=setting_name,
    )


def open_study(settings: SweepSettings) -> optuna.Study:
    """The sweep's study, created on first use; ValueError if its storage cannot be opened or it
    was created with other settings."""
    return open_queue_study(study_address(settings))


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


def needed_points(settings: SweepSettings, trials: Sequence[FrozenTrial]) -> list[Point]:
    """Every point the grid rule wants now, held by a trial or not, optimizers interleaved."""
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
    return wanted


def wanted_points(settings: SweepSettings, trials: Sequence[FrozenTrial]) -> list[Point]:
    """The points the grid rule wants now that no live trial holds, optimizers interleaved."""
    held = held_keys(SweepPlan(settings), trials)
    return [p for p in needed_points(settings, trials) if _key(p) not in held]


# ---------------------------------------------------------------------------------- trials


class SweepPlan:
    """The sweep as a :class:`~adamezo.finetune.trial_queue.Plan`: its points are (optimizer, lr,
    seed), enqueued as the trial's parameters; running one trains its run directory."""

    def __init__(self, settings: SweepSettings, say: Callable[[str], None] = print) -> None:
        self.settings, self.say = settings, say
        self.trained: list[Point] = []

    def needed(self, trials: Sequence[FrozenTrial]) -> list[Point]:
        return needed_points(self.settings, trials)

    def key(self, point: Point) -> Hashable:
        return _key(point)

    def point_of(self, trial: FrozenTrial) -> Point | None:
        return point_of(trial)

    def enqueue(self, study: optuna.Study, point: Point) -> None:
        optimizer, lr, seed = point
        study.enqueue_trial({"optimizer": optimizer, "lr": lr, "seed": seed})

    def take(self, trial: optuna.Trial) -> Point:
        optimizer = trial.suggest_categorical("optimizer", list(self.settings.optimizers))
        lr = trial.suggest_float("lr", *LR_RANGE, log=True)
        seed = trial.suggest_int("seed", 0, MAX_SEED)
        return optimizer, lr, seed

    def run(self, trial: optuna.Trial, point: Point) -> float:
        optimizer, lr, seed = point
        config = self.settings.trial_config(optimizer, lr, seed)
        trial.set_user_attr("run_dir", config.output_dir)
        self.say(
            f"[sweep] trial {trial.number}: {optimizer} lr {lr:g} seed {seed} -> "
            f"{config.output_dir}"
        )
        outcome = train_trial(config)
        for name, value in outcome.items():
            trial.set_user_attr(name, _json_number(value))
        if outcome["trained"]:
            self.trained.append(point)
        how = "diverged" if outcome["diverged"] else f"best {described(outcome)}"
        resumed = ", resumed from its checkpoint" if outcome["resumed"] else ""
        self.say(f"[sweep] trial {trial.number}: {how}{resumed}")
        return float(outcome["selection"])


class Worker:
    """One process taking part in a sweep (see the module docstring)."""

    def __init__(self, settings: SweepSettings, say: Callable[[str], None] = print) -> None:
        self.settings, self.say = settings, say
        self.plan = SweepPlan(settings, say)

    @property
    def trained(self) -> list[Point]:
        """The points this process trained (not those it found finished)."""
        return self.plan.trained

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
        QueueWorker(study, self.plan, poll=poll, say=self.say, label="sweep").run()
        return study


def described(outcome: dict[str, Any]) -> str:
    """``dev loss 0.6`` or, for a run selected by a dev score, ``dev accuracy 0.61``."""
    by = outcome.get("selected_by", "dev loss")
    if by == "dev loss":
        return f"dev loss {outcome['best_dev_loss']:.4g}"
    return f"{by} {-outcome['selection']:.4g} (dev loss there {outcome['best_dev_loss']:.4g})"


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
                "best_dev_loss": attrs.get("best_dev_loss"),
                "selected_by": attrs.get("selected_by", "dev loss"),
                "selection": trial.value if math.isfinite(trial.value) else None,
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
            "selected_by": chosen["selected_by"],
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
        "storage": shown(settings.storage_url()),
        "settings": settings.identity(),
        "complete": not pending,
        "trials": rows,
        "best": best,
    }
