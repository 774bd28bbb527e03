import json
import os
from pathlib import Path

import pytest
import torch

from adamezo.cli import build_parser, main
from tests.finetune.helpers import tiny_llama, tiny_tokenizer

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


def test_finetune_with_an_unknown_task_exits_with_a_clear_error(tmp_path, capsys):
    code = main(["finetune", "--task", "nope", "--output-dir", str(tmp_path / "r")])
    assert code == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, dtype=torch.float32).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


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
