"""The shared trial queue under any plan (no model): each needed point runs once, in order, the
plan is asked again after each, a point a running trial holds is left to it until its heartbeat
stops, a dead worker's queued or retried trial does not jump the plan's order, and a study keeps
the settings it was created with."""

import time

import optuna
import pytest
from optuna.trial import TrialState

from adamezo.finetune.trial_queue import QueueWorker, StudyAddress, open_study


class Letters:
    """Points are letters; each run unlocks the next letter of ``word`` (all are needed at once
    unless ``unlock``); values are positions."""

    def __init__(self, word, unlock=True):
        self.word, self.unlock, self.done = word, unlock, []

    def needed(self, trials):
        letters = self.word[: len(self.done) + 1] if self.unlock else self.word
        return [c for c in letters if c not in self.done]

    def key(self, point):
        return point

    def point_of(self, trial):
        return trial.user_attrs.get("letter")

    def enqueue(self, study, point):
        study.enqueue_trial({}, user_attrs={"letter": point})

    def take(self, trial):
        return trial.user_attrs.get("letter")

    def run(self, trial, point):
        self.done.append(point)
        return float(self.word.index(point))


def address(tmp_path, **kwargs):
    settings = {"storage": f"sqlite:///{tmp_path / 'queue.db'}", "name": "q", "identity": {"a": 1}}
    return StudyAddress(**(settings | {"identity_attr": "test_identity"} | kwargs))


def test_each_needed_point_runs_once_in_order_as_the_plan_unlocks_it(tmp_path):
    study = open_study(address(tmp_path))
    plan = Letters("abc")
    assert QueueWorker(study, plan).run() == ["a", "b", "c"]
    assert [t.value for t in study.trials] == [0.0, 1.0, 2.0]


def test_a_complete_point_is_not_run_again_by_a_later_worker(tmp_path):
    study = open_study(address(tmp_path))
    QueueWorker(study, Letters("ab")).run()
    # a fresh plan needs "a" again: the study's complete trial holds it
    assert QueueWorker(study, Letters("ab")).run() == []
    assert len(study.trials) == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_point_a_running_trial_holds_is_left_to_it(tmp_path):
    study = open_study(address(tmp_path))
    plan = Letters("ab", unlock=False)
    plan.enqueue(study, "a")
    study.ask()  # another worker took "a" (no heartbeat: it never goes stale)
    assert QueueWorker(study, plan, max_trials=1).run() == ["b"]
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE]


def dead_workers_trial(study, plan, point):
    """A trial of ``point`` taken by a worker that sent one heartbeat and died."""
    plan.enqueue(study, point)
    trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)  # as Study.optimize's thread does
    return time.monotonic()


def wait_until_stale(study, timeout=10.0):
    """Until Optuna counts a running trial stale: SQLite's clock, which stamps heartbeats, ticks in
    whole seconds, so a 1 s grace period may need up to 2 s more to pass."""
    deadline = time.monotonic() + timeout
    while not study._storage._get_stale_trial_ids(study._study_id):
        assert time.monotonic() < deadline, "the dead worker's trial never went stale"
        time.sleep(0.1)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_dead_workers_running_point_is_taken_over_after_the_grace_period(tmp_path):
    study = open_study(address(tmp_path, heartbeat_interval=1, grace_period=1))
    plan = Letters("a", unlock=False)
    died = dead_workers_trial(study, plan, "a")
    # left to its trial while the heartbeat is fresh: the worker waits, then retries it
    assert QueueWorker(study, plan, poll=0.1).run() == ["a"]
    assert time.monotonic() - died >= 1.0
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].system_attrs["failed_trial"] == 0  # Optuna's retry of trial 0


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_dead_workers_queued_or_retried_points_wait_for_their_turn_in_the_plan(tmp_path):
    # a worker died running "a" (retried once stale); another died between enqueueing "b" and
    # popping it; a newer plan needs "r" first
    study = open_study(address(tmp_path, heartbeat_interval=1, grace_period=1))
    plan = Letters("rab", unlock=False)
    dead_workers_trial(study, plan, "a")
    plan.enqueue(study, "b")
    wait_until_stale(study)
    assert QueueWorker(study, plan, poll=0.1).run() == ["r", "a", "b"]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [t.user_attrs["letter"] for t in complete] == ["r", "a", "b"]


def test_a_study_refuses_a_worker_with_other_settings(tmp_path):
    open_study(address(tmp_path))
    with pytest.raises(ValueError, match=r"is a study with other settings \(a: 1 -> 2\)"):
        open_study(address(tmp_path, identity={"a": 2}))


def test_a_refusal_names_a_nested_setting_by_its_path_unless_the_owner_names_it(tmp_path):
    nested = {"identity": {"runs": {"steps": 9}, "seeds": [0]}}
    open_study(address(tmp_path, **nested))
    other = {"identity": {"runs": {"steps": 12}, "seeds": [0]}}
    with pytest.raises(ValueError, match=r"other settings \(runs\.steps: 9 -> 12\)"):
        open_study(address(tmp_path, **other))
    named = address(tmp_path, **other, setting_name=lambda path: f"--{path.split('.')[-1]}")
    with pytest.raises(ValueError, match=r"other settings \(--steps: 9 -> 12\)"):
        open_study(named)


def test_a_stored_identity_is_read_as_this_version_writes_it(tmp_path):
    open_study(address(tmp_path))
    newer = address(tmp_path, identity={"a": 1, "b": 0}, as_current=lambda d: {"b": 0} | d)
    assert isinstance(open_study(newer), optuna.Study)
    with pytest.raises(ValueError, match="b: None -> 0"):
        open_study(address(tmp_path, identity={"a": 1, "b": 0}))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"poll": 0}, ValueError, "poll must be > 0"),
        ({"poll": float("nan")}, ValueError, "poll must be finite"),
        ({"max_trials": -1}, ValueError, "max_trials must be an int >= 0"),
        ({"max_trials": 1.5}, TypeError, "max_trials must be an int"),
    ],
)
def test_a_worker_refuses_a_poll_or_trial_limit_out_of_range(tmp_path, kwargs, error, match):
    study = open_study(address(tmp_path))
    with pytest.raises(error, match=match):
        QueueWorker(study, Letters("a"), **kwargs)
    assert QueueWorker(study, Letters("a"), max_trials=0).run() == []


def test_a_worker_keeps_trying_while_another_creates_a_new_sqlite_study(tmp_path, monkeypatch):
    # On a loaded machine the winner of the race may hold the tables for many seconds: more
    # failed tries than a fixed count would allow, as long as the wait stays within its bound.
    from adamezo.finetune import trial_queue

    clock, real_create, failures = [0.0], trial_queue._create, []

    def losing_create(address):
        if len(failures) < 6:
            failures.append(clock[0])
            raise RuntimeError("table studies already exists")
        return real_create(address)

    monkeypatch.setattr(trial_queue, "_create", losing_create)
    monkeypatch.setattr(trial_queue.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(
        trial_queue.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    assert isinstance(open_study(address(tmp_path)), optuna.Study)
    assert len(failures) == 6 and clock[0] <= trial_queue.SQLITE_CREATION_WAIT


def test_a_study_whose_sqlite_folder_is_missing_fails_without_waiting(tmp_path, monkeypatch):
    from adamezo.finetune import trial_queue

    waits = []
    monkeypatch.setattr(trial_queue.time, "sleep", waits.append)
    with pytest.raises(ValueError, match="cannot open the study's study there"):
        open_study(address(tmp_path, storage=f"sqlite:///{tmp_path}/no-folder/q.db"))
    assert waits == []  # no other worker can be creating it: waiting would only delay the error
