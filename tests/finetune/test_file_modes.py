"""Weights files follow the umask like every other file of a run (safetensors alone writes 0600)."""

import os
import stat
from pathlib import Path

import pytest

from tests.finetune.helpers import config, train

WEIGHTS = [
    "best.safetensors",
    "checkpoint/trainable.safetensors",
    "checkpoint/best.safetensors",
]


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "tuning, model_file", [("full", "model.safetensors"), ("lora", "adapter_model.safetensors")]
)
def test_weights_files_follow_the_umask(tmp_path, tokenizer, umask, tuning, model_file):
    cfg = config(tmp_path, tuning=tuning, steps=4, eval_every=2, checkpoint_every=2)
    result = train(cfg, tokenizer)
    run = Path(result.run_dir)
    expected = 0o666 & ~umask
    assert mode(run / "config.json") == expected  # written by plain open()
    for name in [*WEIGHTS, f"model/{model_file}"]:
        assert (run / name).is_file(), name
        assert oct(mode(run / name)) == oct(expected), name
