"""A tested cell whose untested twin has finished is completed by replaying the twin's log (no
training), and a replay that does not rebuild the logged dev loss is refused."""

import json

import pytest

from adamezo.experiments.cells import ZERO_SHOT, Cell
from adamezo.experiments.replay_testing import by_replay, replay_and_test
from adamezo.finetune import loop
from tests.experiments.helpers import log_records, metrics, published, run

TWIN = Cell("sst2", "adamezo", budget=12, lr=1e-3, test=False, tags=("lr",))
TESTED = Cell("sst2", "adamezo", budget=12, lr=1e-3, tags=("main",))


def test_a_tested_cell_whose_untested_twin_finished_is_completed_by_replay(
    protocol, tmp_path, monkeypatch
):
    assert not by_replay(TESTED, tmp_path / "results")
    run([TWIN], protocol, tmp_path)
    assert by_replay(TESTED, tmp_path / "results")
    trained = []
    real = loop.run_finetune
    monkeypatch.setattr(loop, "run_finetune", lambda *a, **k: trained.append(a) or real(*a, **k))
    assert run([TESTED], protocol, tmp_path) == [TESTED]
    assert trained == []  # nothing trained twice
    tested = metrics(tmp_path, TESTED)
    assert 0.0 <= tested["test"]["test_accuracy"] <= 1.0
    replay = tested["tested_by_replay"]
    assert replay["run"] == TWIN.id and replay["step"] == tested["best_step"]
    assert replay["dev_loss_replayed"] == pytest.approx(replay["dev_loss_logged"], rel=1e-6)
    assert log_records(tmp_path, TESTED) == log_records(tmp_path, TWIN)


def test_only_a_tested_zeroth_order_cell_is_completed_by_replay(protocol, tmp_path):
    results = tmp_path / "results"
    for twin in (TWIN, Cell("sst2", "fo-adam", 12, 1e-5, test=False)):
        (results / "cells" / twin.id).mkdir(parents=True)
        (results / "cells" / twin.id / "metrics.json").write_text("{}")
    assert by_replay(TESTED, results)
    assert not by_replay(TWIN, results)  # untested itself
    assert not by_replay(Cell("sst2", "fo-adam", 12, 1e-5), results)  # backprop: no replay
    assert not by_replay(Cell("sst2", ZERO_SHOT, 0), results)


def test_a_replay_that_misses_the_logged_dev_loss_is_refused(protocol, tmp_path):
    twin = Cell("sst2", "mezo", budget=12, lr=1e-2, test=False, tags=("lr",))
    run([twin], protocol, tmp_path)
    path = published(tmp_path, twin)
    logged = json.loads(path.read_text())
    logged["dev"]["dev_loss"] *= 1.01  # as if the log no longer rebuilt the run's weights
    path.write_text(json.dumps(logged))
    with pytest.raises(RuntimeError, match="not the run's weights"):
        replay_and_test(path.parent, tmp_path / "tested", protocol.device)
    assert not (tmp_path / "tested" / "metrics.json").exists()
