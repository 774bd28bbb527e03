"""The shared trial queue under any plan (no model): each needed point runs once, in order, the
plan is asked again after each, a point a running trial holds is left to it, and a study keeps
the settings it was created with."""

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


def test_a_study_refuses_a_worker_with_other_settings(tmp_path):
    open_study(address(tmp_path))
    with pytest.raises(ValueError, match=r"is a study with other settings \(a: 1 -> 2\)"):
        open_study(address(tmp_path, identity={"a": 2}))


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
