"""Bad settings fail at once, before any model, data or run directory; a normal run is quiet."""

import time
import warnings

import pytest

from adamezo.cli import main
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune
from adamezo.tasks import sources
from tests.finetune.helpers import config, train


def test_an_unknown_kernel_is_refused_by_the_config_with_the_choices():
    with pytest.raises(ValueError, match=r"kernel must be one of 'auto', .*'torch'.*got 'foo'"):
        FinetuneConfig(kernel="foo").validate()


def test_an_unknown_device_is_refused_by_the_config():
    with pytest.raises(ValueError, match=r"device .*'gpu'"):
        FinetuneConfig(device="gpu").validate()


def test_cli_unknown_kernel_fails_before_the_run_directory_exists(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--kernel", "foo", "--output-dir", str(run)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'foo'" in capsys.readouterr().err
    assert not run.exists()


def test_finetune_help_lists_the_kernels(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "--kernel {auto,numba,triton,torch}" in capsys.readouterr().out


def test_an_uncached_hub_model_fails_within_seconds_under_hf_hub_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ValueError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        run_finetune(FinetuneConfig(model="nobody/no-such-model", output_dir=str(tmp_path / "r")))
    assert time.perf_counter() - started < 5
    assert not (tmp_path / "r").exists()


def test_an_uncached_hub_model_fails_at_once_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "hub_reachable", lambda *args, **kwargs: False)
    with pytest.raises(ValueError, match="the Hugging Face hub cannot be reached"):
        run_finetune(FinetuneConfig(model="nobody/no-such-model", output_dir=str(tmp_path / "r")))


@pytest.mark.parametrize("tuning", ["full", "lora", "prefix"])
def test_a_training_run_raises_no_future_or_deprecation_warning(tmp_path, tokenizer, tuning):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config(tmp_path, tuning=tuning, lr=1e-2), tokenizer)
    bad = [w for w in caught if issubclass(w.category, FutureWarning | DeprecationWarning)]
    assert not bad, [f"{w.category.__name__}: {w.message}" for w in bad]


def test_progress_written_to_a_file_has_no_bar_control_codes(tmp_path, tokenizer, capsys):
    train(config(tmp_path, progress=True), tokenizer)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "step 4: dev loss" in text
    assert "\r" not in text and "\x1b[" not in text
