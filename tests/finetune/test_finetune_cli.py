import json
import os
from pathlib import Path

import pytest
import torch

from adamezo.cli import build_parser, main
from adamezo.optim.registry import TUNING_MODES as TUNINGS
from tests.finetune.helpers import run_alone_and_on_two_processes, trained_alike

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ADAMEZO_DATA") or REPO / ".." / "shared" / "data")
needs_data = pytest.mark.skipif(
    not (DATA / "sst2" / "train.tsv").is_file(),
    reason="real benchmark data not found: set ADAMEZO_DATA or provide ../shared/data",
)


def subcommand(name):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("name", ["finetune", "eval", "demo"])
def test_help_explains_every_flag(name):
    for action in subcommand(name)._actions:
        assert action.help, f"adamezo {name} {action.option_strings} has no help"


def test_finetune_flags_cover_every_run_setting():
    from adamezo.finetune.config import FinetuneConfig

    dests = {a.dest for a in subcommand("finetune")._actions}
    assert set(FinetuneConfig.__dataclass_fields__) - {"extra"} <= dests


def test_preset_and_warmup_flags_reach_the_optimizer_a_run_builds():
    from adamezo.finetune.builder import build_optimizer
    from adamezo.finetune.flags import config_from_args

    args = build_parser().parse_args(
        ["finetune", "--preset", "reference", "--warmup-steps", "3", "--lr", "1e-5"]
    )
    config = config_from_args(args).resolved()

    class Tuned:
        def param_groups(self, exclude_bias_norm):
            return [{"params": [torch.zeros(4)]}]

    optimizer = build_optimizer(config, Tuned())
    assert optimizer.config.preset == "reference"
    assert optimizer.warmup_steps == 3  # the explicit flag wins over the preset's K + 1
    assert optimizer.param_groups[0]["normalize"] is False
    assert optimizer.param_groups[0]["gain"] == 100.0


def test_finetune_with_an_unknown_task_exits_with_a_clear_error(tmp_path, capsys):
    code = main(["finetune", "--task", "nope", "--output-dir", str(tmp_path / "r")])
    assert code == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@needs_data
def test_finetune_then_eval_the_run_from_the_command_line(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    args = ["--model", str(tiny_model_dir), "--task", "sst2", "--data-dir", str(DATA)]
    sizes = ["--n-train", "16", "--n-dev", "8", "--n-test", "8", "--batch-size", "4"]
    code = main(
        [
            "finetune",
            *args,
            *sizes,
            "--tuning",
            "lora",
            "--steps",
            "2",
            "--eval-every",
            "2",
            "--output-dir",
            str(run),
            "--no-progress",
        ]
    )
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--split", "test", "--no-progress"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    # The exported adapter, loaded afresh, reproduces the run's own test numbers.
    assert evaluated["test_loss"] == pytest.approx(metrics["test"]["test_loss"], abs=1e-6)
    assert evaluated["test_accuracy"] == metrics["test"]["test_accuracy"]


@pytest.mark.slow
@needs_data
def test_zero_shot_eval_of_a_model_directory(tiny_model_dir, capsys):
    code = main(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--task",
            "sst2",
            "--data-dir",
            str(DATA),
            "--n-dev",
            "8",
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 8 and 0.0 <= result["dev_accuracy"] <= 1.0


@pytest.mark.slow
@needs_data
def test_finetune_under_torchrun_with_two_processes_trains_like_one(tmp_path, tiny_model_dir):
    common = ["finetune", "--model", str(tiny_model_dir), "--task", "sst2"]
    common += ["--data-dir", str(DATA), "--n-train", "16", "--n-dev", "8", "--n-test", "0"]
    # A batch of 5 splits 3 + 2, so the losses must be weighted by shard size; float64 keeps the
    # rounding of the shard means far below the update a learning rate of 1e-3 makes in 4 steps.
    common += ["--batch-size", "5", "--steps", "4", "--eval-every", "4", "--no-progress"]
    common += ["--optimizer", "adamezo", "--tuning", "full", "--lr", "1e-3", "--dtype", "float64"]
    run = run_alone_and_on_two_processes(common, tmp_path)
    assert run.stdout.count("run files:") == 1  # rank 0 alone reports
    # Measured: 2e-16 apart, while the weights moved by up to 4e-3.
    one, two, initial = trained_alike(tmp_path, tiny_model_dir / "model.safetensors")
    assert one.keys() == two.keys() and initial.keys() <= one.keys()
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["train_forward_passes"] == 8


@pytest.mark.slow
@needs_data
def test_first_order_adam_refuses_to_run_data_parallel(tmp_path, tiny_model_dir, monkeypatch):
    from adamezo.finetune import FinetuneConfig, run_finetune

    monkeypatch.setattr("adamezo.distributed.world_size", lambda: 2)
    config = FinetuneConfig(
        model=str(tiny_model_dir),
        task="sst2",
        data_dir=str(DATA),
        optimizer="fo-adam",
        output_dir=str(tmp_path / "r"),
    )
    with pytest.raises(ValueError, match="data-parallel runs"):
        run_finetune(config)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tiny_model_dir):
    from adamezo.finetune.loop import run_finetune
    from tests.finetune.helpers import config, sentiment_data

    root = tmp_path_factory.mktemp("eval-run")
    cfg = config(root, model=str(tiny_model_dir), steps=1, save_model=False, output_dir=str(root))
    return run_finetune(cfg, data=sentiment_data()).run_dir


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--model", "/no/such"], "--model '/no/such'"),
        (["--task", "trec"], "--task 'trec'"),
        (["--num-layers", "2"], "--num-layers 2"),
        (["--dtype", "bfloat16"], "--dtype 'bfloat16'"),
        (["--adapter", "/some/adapter"], "--adapter"),
    ],
)
def test_eval_of_a_run_refuses_settings_that_contradict_the_run(small_run, capsys, flags, named):
    assert main(["eval", "--run", str(small_run), *flags, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert named in err and "the run" in err, err


def test_mu_shows_a_metavar_of_its_own(capsys):
    help_text = subcommand("finetune").format_help()
    assert "--mu MU, --perturbation-scale MU" in help_text
    assert "PERTURBATION_SCALE" not in help_text


def test_an_unknown_optimizer_is_one_line_listing_the_choices(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["finetune", "--optimizer", "adammezo"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "adammezo" in err and "'adamezo'" in err and "'mezo'" in err and "--help" in err


def test_help_shows_the_default_lr_of_each_optimizer_as_a_table():
    from adamezo.optim.registry import OPTIMIZERS

    lines = subcommand("finetune").format_help().splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["optimizer", *TUNINGS])
    rows = {
        line.split()[0]: line.split()[1:]
        for line in lines[header + 1 : header + 1 + len(OPTIMIZERS)]
    }
    assert set(rows) == set(OPTIMIZERS)
    for name, entry in OPTIMIZERS.items():
        assert [float(x) for x in rows[name]] == [entry.default_lr[m] for m in TUNINGS]
