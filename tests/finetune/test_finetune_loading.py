"""Lean loading: weights read straight in the requested dtype onto their device, float16 among
the dtypes, and accelerate's device_map="auto"."""

import json

import pytest
import torch

from adamezo.cli import build_parser
from adamezo.finetune import FinetuneConfig
from adamezo.finetune.flags import config_from_args
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.models import load_model
from tests.finetune.helpers import sentiment_data


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_a_model_directory_loads_straight_in_the_requested_dtype(tiny_model_dir, dtype):
    model, _ = load_model(str(tiny_model_dir), dtype=dtype, device="cpu")
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_device_map_auto_loads_every_weight_in_the_dtype_on_a_real_device(tiny_model_dir):
    pytest.importorskip("accelerate")
    model, _ = load_model(str(tiny_model_dir), dtype="float16", device_map="auto")
    assert {p.dtype for p in model.parameters()} == {torch.float16}
    assert not any(p.device.type == "meta" for p in model.parameters())


def test_an_unknown_device_map_is_refused_before_loading(tiny_model_dir):
    with pytest.raises(ValueError, match="device_map"):
        load_model(str(tiny_model_dir), device_map="balanced")


def test_a_float16_run_with_device_map_auto_trains_with_exact_steps(tmp_path, tiny_model_dir):
    pytest.importorskip("accelerate")
    cfg = FinetuneConfig(
        model=str(tiny_model_dir),
        task="sst2",
        optimizer="adamezo",
        tuning="full",
        lr=0.0,
        steps=3,
        batch_size=4,
        eval_every=3,
        dtype="float16",
        device_map="auto",
        device="cpu",
        output_dir=str(tmp_path / "run"),
        progress=False,
        test=False,
        save_model=False,
    )
    result = run_finetune(cfg, data=sentiment_data())
    assert result.metrics["steps"] == 3
    loaded, _ = load_model(str(tiny_model_dir), dtype="float16")
    # lr 0 with exact steps (auto, for float16): every weight bitwise as loaded.
    for (name, trained), original in zip(
        result.model.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(trained.view(torch.int16), original.view(torch.int16)), name
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["dtype"] == "float16" and config["perturbation"] == "auto"


def test_the_finetune_command_takes_float16_device_map_and_perturbation(tmp_path):
    args = build_parser().parse_args(
        ["finetune", "--dtype", "float16", "--device-map", "auto", "--perturbation", "exact"]
    )
    cfg = config_from_args(args)
    assert (cfg.dtype, cfg.device_map, cfg.perturbation) == ("float16", "auto", "exact")


def test_a_cached_float32_model_is_kept_once_more_in_a_16_bit_dtype(tmp_path, tiny_model_dir):
    import shutil

    from adamezo.finetune import models

    source = tmp_path / "tiny-123"
    shutil.copytree(tiny_model_dir, source)
    target = models._cast_copy(source, "bfloat16")
    assert target == tmp_path / "tiny-123-bfloat16"
    assert models._cast_copy(source, "bfloat16") == target  # made once, then reused
    config = json.loads((target / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    model, _ = load_model(str(target), dtype="bfloat16")
    original, _ = load_model(str(source), dtype="bfloat16")
    for a, b in zip(model.state_dict().values(), original.state_dict().values(), strict=True):
        assert torch.equal(a, b)
