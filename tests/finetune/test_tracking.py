import importlib.util

import pytest

from adamezo.cli import main
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.rundir import RunDirectory
from adamezo.finetune.tracking import TRACKING, final_scalars, hyperparameters, scalars
from tests.finetune.helpers import config, train

pytest.importorskip("tensorboard")


def read_events(directory):
    """Every scalar series under ``directory`` as {tag: [(step, value), ...]} and the hparams'
    names, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(directory))
    events.Reload()
    series, hparams = {}, set()
    for run, tags in events.Runs().items():
        accumulator = events.GetAccumulator(run)
        for tag in tags["scalars"]:
            series[tag] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
        try:
            plugin = accumulator.PluginTagToContent("hparams")
        except KeyError:  # this run (folder) holds no hyperparameters
            plugin = {}
        for content in plugin.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            hparams |= set(data.session_start_info.hparams)
    return series, hparams


def test_tensorboard_event_files_hold_every_logged_number_at_its_step(tmp_path, tokenizer):
    result = train(config(tmp_path, report_to="tensorboard"), tokenizer)
    records = RunDirectory(result.run_dir).read_log()
    series, _ = read_events(result.run_dir / TRACKING)
    train_losses = [(r.step, r.loss) for r in records if r.type == "train"]
    dev_losses = [(r.step, r.dev_loss) for r in records if r.type == "eval"]
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in train_losses] == series["train/loss"]
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in dev_losses] == series["eval/dev_loss"]
    assert [s for s, _ in series["train/lr"]] == [1, 2, 3, 4]
    assert "train/forward_passes" in series and "eval/dev_accuracy" in series


def test_tensorboard_gets_the_run_settings_as_hyperparameters(tmp_path, tokenizer):
    result = train(config(tmp_path, report_to="tensorboard"), tokenizer)
    _, hparams = read_events(result.run_dir / TRACKING)
    assert {"optimizer", "lr", "batch_size", "tuning", "seed"} <= hparams


def test_tensorboard_gets_the_final_metrics_at_the_last_step(tmp_path, tokenizer):
    result = train(config(tmp_path, report_to="tensorboard"), tokenizer)
    series, _ = read_events(result.run_dir / TRACKING)
    dev_loss = result.metrics["dev"]["dev_loss"]
    assert series["final/dev_loss"] == [(4, pytest.approx(dev_loss, rel=1e-6))]


def test_without_report_to_no_tracking_folder_is_written(tmp_path, tokenizer):
    result = train(config(tmp_path), tokenizer)
    assert not (result.run_dir / TRACKING).exists()


def test_report_to_is_not_part_of_the_run_identity():
    assert "report_to" not in FinetuneConfig(report_to="tensorboard").run_identity()


def test_an_unknown_tracker_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"report_to must be one of .*'tensorboard'.*got 'comet'"):
        FinetuneConfig(report_to="comet").validate()


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_a_tracker_whose_package_is_missing_fails_before_anything_loads(tracker, tmp_path, capsys):
    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed here")
    code = main(["finetune", "--report-to", tracker, "--output-dir", str(tmp_path / "r")])
    assert code == 2
    assert f"report_to={tracker!r} needs the {tracker} package" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_scalars_keep_the_numbers_of_a_record_named_by_its_type():
    record = {"type": "eval", "step": 3, "dev_loss": 0.5, "best_step": None, "flag": True}
    assert scalars(record) == {"eval/dev_loss": 0.5}


def test_hyperparameters_turn_lists_and_none_into_text():
    values = hyperparameters({"betas": [0.9, 0.99], "lr": 0.1, "horizon": None})
    assert values == {"betas": "[0.9, 0.99]", "lr": 0.1, "horizon": "none"}


def test_final_scalars_flatten_the_metric_sections():
    metrics = {"steps": 4, "zero_shot": {"dev_loss": 1.0}, "dev": {"dev_loss": 0.5}, "task": "x"}
    assert final_scalars(metrics) == {
        "final/steps": 4,
        "final/zero_shot_dev_loss": 1.0,
        "final/dev_loss": 0.5,
    }


def test_a_tracked_run_can_be_overwritten_and_keeps_only_the_new_events(tmp_path, tokenizer):
    train(config(tmp_path, report_to="tensorboard", steps=2), tokenizer)
    result = train(config(tmp_path, report_to="tensorboard", overwrite=True), tokenizer)
    series, _ = read_events(result.run_dir / TRACKING)
    assert [s for s, _ in series["train/loss"]] == [1, 2, 3, 4]
