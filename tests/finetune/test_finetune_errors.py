import json
import re

import pytest

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.files import RunDirectoryError
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.models import check_model_name
from tests.finetune.helpers import config, sentiment_data, train


def quick(tmp_path, **overrides):
    """A one-step run with nothing optional: no evaluations beyond the last, no test, no export."""
    settings = dict(steps=1, eval_at_start=False, test=False, save_model=False)
    return config(tmp_path, **{**settings, **overrides})


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("optimizer", "sgd", "optimizer"),
        ("tuning", "adapters", "tuning"),
        ("lr", -1.0, "lr"),
        ("batch_size", 0, "batch_size"),
        ("betas", (0.9, 1.5), "betas[1]"),
        ("lr_schedule", "step", "lr_schedule"),
        ("preset", "published", "preset"),
        ("warmup_steps", -1, "warmup_steps"),
    ],
)
def test_bad_settings_raise_naming_the_setting(setting, value, named):
    with pytest.raises((ValueError, TypeError), match=named.replace("[", r"\[")):
        FinetuneConfig(**{setting: value}).validate()


@pytest.mark.parametrize(
    ("setting", "value"), [("horizon", 3), ("preset", "reference"), ("warmup_steps", 2)]
)
def test_adamezo_only_settings_are_refused_for_mezo(setting, value):
    with pytest.raises(ValueError, match=f"{setting}: optimizer 'mezo' takes no {setting}"):
        FinetuneConfig(optimizer="mezo", **{setting: value}).validate()


def test_unknown_task_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="no-such-task"):
        run_finetune(config(tmp_path, task="no-such-task", model="smollm2-135m"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["./no-such-model", "no such model", "a/b/c", "bad..name"])
def test_unknown_model_fails_before_anything_is_written(tmp_path, name):
    with pytest.raises(ValueError, match=re.escape(f"unknown model {name!r}")):
        run_finetune(config(tmp_path, model=name))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name", ["gpt2", "distilgpt2", "openai-community/gpt2", "EleutherAI/pythia-70m"]
)
def test_bare_and_owner_hub_names_are_accepted(name):
    check_model_name(name)  # loads nothing: hub ids are only checked for their shape


def test_a_model_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"has no config\.json"):
        check_model_name(str(tmp_path))


def test_missing_data_names_the_paths_tried(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty / "sst2" / "train.tsv")):
        run_finetune(config(tmp_path, model="smollm2-135m", data_dir=str(empty)))
    assert not (tmp_path / "run").exists()


def test_an_output_dir_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, tokenizer):
    train(quick(tmp_path), tokenizer)
    before = (tmp_path / "run" / "log.jsonl").read_text()
    with pytest.raises(RunDirectoryError, match=r"--resume .* --overwrite"):
        train(quick(tmp_path, lr=5e-3), tokenizer)
    assert (tmp_path / "run" / "log.jsonl").read_text() == before


def test_resume_with_different_settings_is_refused(tmp_path, tokenizer):
    train(quick(tmp_path), tokenizer)
    with pytest.raises(RunDirectoryError, match=r"lr: 0\.001 -> 0\.005"):
        train(quick(tmp_path, lr=5e-3, resume=True), tokenizer)


def test_overwrite_replaces_the_run(tmp_path, tokenizer):
    train(quick(tmp_path), tokenizer)
    train(quick(tmp_path, steps=2, overwrite=True), tokenizer)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["steps"] == 2


def test_a_non_empty_directory_that_is_no_run_is_never_used(tmp_path, tokenizer):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="holds no adamezo run"):
        train(config(tmp_path, overwrite=True), tokenizer)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_a_peft_mode_the_model_cannot_take_is_a_clear_error(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="tuning='lora' is not supported"):
        train(config(tmp_path, tuning="lora", lora_targets=["no_such_module"]), tokenizer)
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_training_set_is_refused(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="batch_size"):
        train(config(tmp_path, batch_size=64), tokenizer, data=sentiment_data(n_train=8))
