"""--mixed-precision: the forward passes under autocast, float32 weights, perturbation and update;
saved in the run's config, so resume, replay and eval do the same."""

import json

import pytest
import torch
from safetensors.torch import load_file

from adamezo.cli import main
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.evaluate import evaluate_run
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.precision import check_autocast, check_mixed_precision
from adamezo.finetune.replay import replay_run
from adamezo.finetune.rundir import RunDirectory
from tests.finetune.helpers import (
    config,
    sentiment_data,
    tiny_llama,
    train,
    untimed_log,
    weights,
    whole_and_resumed,
    write_sst2,
)


def record_lm_head(model):
    """Record, per forward pass, whether autocast was on and the dtype of the logits."""
    seen = []

    def hook(module, inputs, output):
        seen.append((torch.is_autocast_enabled("cpu"), output.dtype))

    model.lm_head.register_forward_hook(hook)
    return seen


@pytest.mark.parametrize(("mixed", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_the_forward_passes_run_under_autocast_and_the_weights_stay_float32(
    tmp_path, tokenizer, mixed, dtype
):
    model = tiny_llama(tokenizer, dtype=torch.float32)
    seen = record_lm_head(model)
    cfg = config(tmp_path, mixed_precision=mixed, keep_best=False, test=False)
    result = run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data())
    assert seen and set(seen) == {(True, dtype)}  # training and evaluation passes alike
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    plain = train(config(tmp_path / "fp32", keep_best=False, test=False), tokenizer)
    assert result.metrics["dev"]["dev_loss"] != plain.metrics["dev"]["dev_loss"]


def test_without_mixed_precision_no_forward_pass_autocasts(tmp_path, tokenizer):
    model = tiny_llama(tokenizer, dtype=torch.float32)
    seen = record_lm_head(model)
    run_finetune(config(tmp_path), model=model, tokenizer=tokenizer, data=sentiment_data())
    assert seen and set(seen) == {(False, torch.float32)}


def test_the_setting_is_saved_in_the_config_and_reads_back(tmp_path, tokenizer):
    result = train(config(tmp_path, mixed_precision="bf16"), tokenizer)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["mixed_precision"] == "bf16"
    assert FinetuneConfig.from_dict(saved).mixed_precision == "bf16"
    cfg = FinetuneConfig(mixed_precision="fp16")
    assert FinetuneConfig.from_dict(cfg.to_dict()) == cfg


def test_a_run_written_before_the_setting_reads_and_resumes_as_no_mixed_precision(
    tmp_path, tokenizer
):
    settings = dict(steps=6, eval_every=2, checkpoint_every=2, keep_best=False)

    def stop_at_step_3(record):
        if record["type"] == "train" and record["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, **settings), tokenizer, callbacks=[stop_at_step_3])
    path = tmp_path / "run" / "config.json"
    old = json.loads(path.read_text())
    del old["mixed_precision"]
    path.write_text(json.dumps(old))
    assert FinetuneConfig.from_dict(RunDirectory(path.parent).read_config()).mixed_precision == "no"
    resumed = train(config(tmp_path, resume=True, **settings), tokenizer)  # same run: accepted
    assert resumed.metrics["steps"] == 6


def test_resuming_a_run_with_another_precision_is_refused(tmp_path, tokenizer):
    train(config(tmp_path, mixed_precision="bf16", checkpoint_every=2), tokenizer)
    with pytest.raises(ValueError, match="mixed_precision"):
        train(config(tmp_path, resume=True, checkpoint_every=2), tokenizer)


@pytest.mark.parametrize("value", ["bf17", "BF16", "", None, "bfloat16"])
def test_a_bad_value_is_an_error_naming_the_setting_and_its_choices(value):
    with pytest.raises((ValueError, TypeError), match="mixed_precision") as error:
        FinetuneConfig(mixed_precision=value).validate()
    assert "bf16" in str(error.value) and "fp16" in str(error.value)


def test_the_cli_names_the_flag_and_its_choices(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--mixed-precision", "half"])
    err = capsys.readouterr().err
    assert "--mixed-precision" in err and "'no', 'bf16', 'fp16'" in err


def test_mixed_precision_needs_float32_master_weights():
    with pytest.raises(ValueError, match=r"mixed_precision='bf16'.*dtype='float32'"):
        FinetuneConfig(mixed_precision="bf16", dtype="bfloat16").validate()


def test_fp16_with_backprop_is_refused_and_bf16_is_not():
    with pytest.raises(ValueError, match=r"fp16.*loss scaling"):
        FinetuneConfig(optimizer="fo-adam", mixed_precision="fp16").validate()
    FinetuneConfig(optimizer="fo-adam", mixed_precision="bf16", device="cpu").validate()


def test_a_dtype_torch_cannot_autocast_to_on_the_device_is_refused_clearly():
    # CPU autocast takes bfloat16 and float16 only; float64 is what torch would quietly ignore.
    with pytest.raises(ValueError, match=r"cannot autocast to torch\.float64 on .cpu."):
        check_autocast("cpu", torch.float64)
    check_autocast("cpu", torch.float16)  # torch 2.13 autocasts float16 on the CPU
    check_mixed_precision("fp16", dtype="float32", device="cpu", zeroth_order=True)


def finetune_dir(tmp_path, model_dir, name, **overrides):
    settings = dict(model=str(model_dir), steps=5, eval_every=2, test=False, lr=1e-2)
    cfg = config(tmp_path, **{**settings, **overrides}, output_dir=str(tmp_path / name))
    return run_finetune(cfg, data=sentiment_data())


@pytest.mark.parametrize("optimizer", ["mezo", "adamezo"])
def test_replay_of_a_bf16_autocast_run_is_bitwise(tmp_path, tiny_model_dir, optimizer):
    run = finetune_dir(tmp_path, tiny_model_dir, "run", optimizer=optimizer, mixed_precision="bf16")
    replay_run(run.run_dir, tmp_path / "replayed")
    rebuilt = load_file(str(tmp_path / "replayed" / "model.safetensors"))
    trained = load_file(str(run.run_dir / "model" / "model.safetensors"))
    assert rebuilt.keys() == trained.keys()
    assert all(torch.equal(rebuilt[k], trained[k]) for k in rebuilt)
    assert {t.dtype for t in rebuilt.values()} == {torch.float32}


@pytest.mark.parametrize("optimizer", ["adamezo", "fo-adam"])
def test_an_interrupted_bf16_run_resumes_bitwise(tmp_path, tokenizer, optimizer):
    settings = dict(
        optimizer=optimizer, steps=6, eval_every=3, checkpoint_every=2, mixed_precision="bf16"
    )
    whole, resumed = whole_and_resumed(tmp_path, tokenizer, 5, **settings)  # last checkpoint: 4
    a, b = weights(whole.model), weights(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert untimed_log(whole.run_dir) == untimed_log(resumed.run_dir)


@pytest.mark.usefixtures("no_hub")
def test_eval_of_a_run_uses_its_mixed_precision_unless_told_otherwise(
    tmp_path, tiny_model_dir, capsys
):
    data = write_sst2(tmp_path / "data", n_validation=16)
    run = tmp_path / "run"
    args = ["finetune", "--model", str(tiny_model_dir), "--task", "sst2", "--data-dir", str(data)]
    args += ["--n-train", "16", "--n-dev", "8", "--n-test", "8", "--batch-size", "4"]
    args += ["--steps", "2", "--eval-every", "2", "--no-keep-best", "--no-progress"]
    assert main([*args, "--output-dir", str(run), "--mixed-precision", "bf16"]) == 0
    logged = json.loads((run / "metrics.json").read_text())["test"]["test_loss"]
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--split", "test", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["test_loss"] == logged
    plain = evaluate_run(str(run), "test", mixed_precision="no", progress=False)
    assert plain["test_loss"] != logged
