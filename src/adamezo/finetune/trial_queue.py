"""Work shared through an Optuna study's queue: each unit of work (a *point*) runs as one trial,
taken by whichever worker pops it, and a trial whose heartbeat stopped is retried by the next.

What the points are, which are needed, and how one runs is a :class:`Plan`'s business (the lr
sweep's grid, :mod:`adamezo.finetune.sweep`; the optimizer study's cells,
:mod:`adamezo.experiments.workers`). A :class:`QueueWorker` loops: fail the trials whose heartbeat
stopped (Optuna's retry callback puts a copy back in the queue), enqueue the first point the plan
needs that no live trial holds, run one queued trial (the one of the plan's earliest point: a trial
Optuna pops ahead of it, such as a dead worker's, is pruned and its point enqueued again in its
turn), and wait while other workers run points the plan still needs; it returns when the plan
needs nothing more. Points are enqueued one at a time, just before a worker pops one, so the plan
is asked again after every trial (what it needs may depend on what finished). The study's sampler
invents nothing (:class:`QueueOnlySampler`).
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamezo._checks import check_float, check_int

LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
"""A point held by a trial in one of these states is not enqueued again."""


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


@dataclass(frozen=True)
class StudyAddress:
    """Where a shared study lives and what every worker of it must agree on."""

    storage: str
    """An SQLAlchemy URL: sqlite:///..., postgresql://..., mysql://..."""
    name: str
    identity: dict[str, Any]
    """The settings the study was created with (JSON types); a worker with others is refused."""
    identity_attr: str
    """The study's user attribute that holds ``identity``."""
    heartbeat_interval: int = 60
    grace_period: int | None = None
    """Seconds without a heartbeat after which a running trial is retried (default 2x the
    interval)."""
    what: str = "study"
    """What the study is, for error messages ("sweep")."""
    other_name_hint: str = "give this one another study name"
    """How to start a study of other settings instead, for the refusal."""
    as_current: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Reads a stored identity as this version writes it (the settings added since it was stored
    given the value an older worker meant), before it is compared; None: as stored."""
    setting_name: Callable[[str], str] | None = None
    """How the refusal names a setting that differs, given its dotted path in ``identity``
    (``runs.steps``); None: the path itself."""


SQLITE_CREATION_WAIT = 60.0
"""Seconds a worker keeps trying to open a new SQLite study while another creates its tables."""


def open_study(address: StudyAddress) -> optuna.Study:
    """The study, created on first use; ValueError if its storage cannot be opened or it was
    created with other settings."""
    url = address.storage
    # Workers starting together on a new SQLite file race to create its tables, and the loser
    # fails at once: it tries again until the winner is done, which on a loaded machine can take
    # many seconds (a count of tries would give up too soon there).
    racing = url.startswith("sqlite") and _sqlite_folder_exists(url)  # else no wait helps
    deadline = time.monotonic() + (SQLITE_CREATION_WAIT if racing else 0.0)
    pause = 0.5
    while True:
        try:
            study = _create(address)
            break
        except Exception as error:  # a driver, URL or connection error: all mean "cannot open"
            if time.monotonic() + pause < deadline:
                time.sleep(pause)
                pause = min(2 * pause, 5.0)
                continue
            raise ValueError(
                f"storage {shown(url)!r}: cannot open the {address.what}'s study there "
                f"({type(error).__name__}: {error})"
            ) from error
    _check_identity(study, address)
    return study


def _sqlite_folder_exists(url: str) -> bool:
    """Whether the folder of an SQLite URL's file is there (False for an in-memory database,
    which no other process can be creating)."""
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:
        return False
    if not database or database == ":memory:":
        return False
    return Path(database).resolve().parent.is_dir()


def _create(address: StudyAddress) -> optuna.Study:
    url = address.storage
    with warnings.catch_warnings():  # heartbeats and retries are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=_engine_options(url),
            heartbeat_interval=address.heartbeat_interval,
            grace_period=address.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
        )
    return optuna.create_study(
        storage=storage,
        study_name=address.name,
        direction="minimize",
        sampler=QueueOnlySampler(),
        load_if_exists=True,
    )


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # wait for another worker's write
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 15}}  # an unreachable host fails soon
    return {}


def shown(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _check_identity(study: optuna.Study, address: StudyAddress) -> None:
    mine = address.identity
    theirs = study.user_attrs.get(address.identity_attr)
    if theirs is None:
        study.set_user_attr(address.identity_attr, mine)
        return
    if address.as_current is not None:
        theirs = address.as_current(theirs)
    if theirs != mine:
        name = address.setting_name or (lambda path: path)
        changes = [
            f"{name(path)}: {old!r} -> {new!r}" for path, old, new in _differences(theirs, mine)
        ]
        raise ValueError(
            f"study {address.name!r} in {shown(address.storage)!r} is a {address.what} with "
            f"other settings ({'; '.join(changes[:6])}): run it with its own settings, or "
            f"{address.other_name_hint}"
        )


def _differences(
    theirs: dict[str, Any], mine: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """(dotted path, their value, mine) of each setting that differs, nested dicts walked."""
    changes = []
    for key in sorted(set(theirs) | set(mine)):
        old, new = theirs.get(key), mine.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append((f"{prefix}{key}", old, new))
    return changes


# -------------------------------------------------------------------------------------- plan


class Plan(Protocol):
    """What a queue's points are and how one runs (see the module docstring)."""

    def needed(self, trials: Sequence[FrozenTrial]) -> list[Any]:
        """The points still needed, in the order to run them, whether or not a trial holds one
        (the worker leaves out those held by a live trial)."""

    def key(self, point: Any) -> Hashable:
        """What makes two points the same."""

    def point_of(self, trial: FrozenTrial) -> Any | None:
        """The point a trial holds (queued, running or run), None if it holds none."""

    def enqueue(self, study: optuna.Study, point: Any) -> None:
        """Put ``point`` in the study's queue."""

    def take(self, trial: optuna.Trial) -> Any | None:
        """The point a trial popped from the queue holds, None if it holds none."""

    def run(self, trial: optuna.Trial, point: Any) -> float:
        """Run ``point``; the trial's value."""


def key_of(plan: Plan, trial: FrozenTrial) -> Hashable | None:
    """The key of the point a trial holds, None if it holds none."""
    point = plan.point_of(trial)
    return None if point is None else plan.key(point)


def held_keys(plan: Plan, trials: Iterable[FrozenTrial]) -> set[Hashable]:
    """The keys of the points that live trials hold."""
    return {key for t in trials if t.state in LIVE and (key := key_of(plan, t)) is not None}


def first_holder(trials: Iterable[FrozenTrial], number: int, point: Any, plan: Plan) -> int | None:
    """Another trial that holds ``point`` and goes first: a complete one, or a queued or running
    one of a lower number (the lowest-numbered live trial of a point is the one that runs)."""
    key = plan.key(point)
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.number == number or key_of(plan, trial) != key:
            continue
        if trial.state == TrialState.COMPLETE or (trial.state in LIVE and trial.number < number):
            return trial.number
    return None


def queued_ahead(
    trials: Iterable[FrozenTrial], number: int, point: Any, plan: Plan, needed: Sequence[Any]
) -> int | None:
    """A queued trial, not ``number``, that runs a point the plan ``needed`` (in its order) before
    ``point`` (a point it does not need comes last): of those, the one of the earliest point; None
    if there is none and ``number`` may run ``point`` now.

    Optuna pops the oldest queued trial, which need not hold the point a worker just enqueued: a
    dead worker may have enqueued one and never popped it, Optuna's retry of a stale trial joins
    the queue's end, and a plan's order may change between workers. Such a trial, pruned, gets
    its point enqueued again in the plan's turn."""
    rank = {plan.key(p): i for i, p in enumerate(needed)}
    best, ahead = rank.get(plan.key(point), len(rank)), None
    seen: set[Hashable] = set()
    for trial in sorted(trials, key=lambda t: t.number):
        key = key_of(plan, trial) if trial.state in LIVE else None
        if key is None or key in seen:
            continue
        seen.add(key)  # the lowest-numbered live trial of a point is the one that runs
        waiting = trial.state == TrialState.WAITING and trial.number != number
        if waiting and rank.get(key, best) < best:
            best, ahead = rank[key], trial.number
    return ahead


class QueueWorker:
    """One process working a study's queue for a plan (see the module docstring): ``poll`` > 0
    seconds between looks while others run what the plan needs; at most ``max_trials`` ≥ 0
    trials run here (None: no limit)."""

    def __init__(
        self,
        study: optuna.Study,
        plan: Plan,
        *,
        poll: float = 5.0,
        max_trials: int | None = None,
        say: Callable[[str], None] = print,
        label: str = "queue",
    ) -> None:
        self.study, self.plan = study, plan
        self.poll = check_float("poll", poll, 0.0, min_open=True)
        self.max_trials = None if max_trials is None else check_int("max_trials", max_trials, 0)
        self.say, self.label = say, label
        self.ran: list[Any] = []
        """The points this worker ran, in order."""

    def run(self) -> list[Any]:
        """Work until the plan needs nothing more (or ``max_trials`` ran); the points run."""
        study, plan = self.study, self.plan
        waiting_said = False
        while self.max_trials is None or len(self.ran) < self.max_trials:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            needed = plan.needed(trials)
            held = held_keys(plan, trials)
            free = next((p for p in needed if plan.key(p) not in held), None)
            if free is not None:
                plan.enqueue(study, free)
                trials = study.get_trials(deepcopy=False)
            if any(t.state == TrialState.WAITING for t in trials):
                study.optimize(partial(self._objective, needed=needed), n_trials=1)
                waiting_said = False
            elif running := self._running(trials, needed):
                if not waiting_said:
                    self.say(f"[{self.label}] waiting for {running} running trial(s) of others")
                    waiting_said = True
                time.sleep(self.poll)
            else:
                break
        return self.ran

    def _running(self, trials: Sequence[FrozenTrial], needed: Sequence[Any]) -> int:
        """How many running trials hold a point the plan still needs."""
        keys = {self.plan.key(p) for p in needed}
        return sum(t.state == TrialState.RUNNING and key_of(self.plan, t) in keys for t in trials)

    def _objective(self, trial: optuna.Trial, needed: Sequence[Any]) -> float:
        plan = self.plan
        point = plan.take(trial)
        if point is None:
            raise optuna.TrialPruned("no queued point left: another worker took the last one")
        trials = trial.study.get_trials(deepcopy=False)
        other = first_holder(trials, trial.number, point, plan)
        if other is not None:  # two workers enqueued the same point at once
            trial.set_user_attr("duplicate_of", other)
            raise optuna.TrialPruned(f"trial {other} holds the same point")
        ahead = queued_ahead(trials, trial.number, point, plan, needed)
        if ahead is not None:  # Optuna pops the oldest queued trial, the plan wants another
            trial.set_user_attr("queued_ahead", ahead)
            raise optuna.TrialPruned(f"trial {ahead} holds a point the plan runs first")
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        value = plan.run(trial, point)
        self.ran.append(point)
        return value
