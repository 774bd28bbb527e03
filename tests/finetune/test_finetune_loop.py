import json

import pytest
import torch

from adamezo.finetune.loop import run_finetune
from adamezo.finetune.progress import progress_bar
from adamezo.optim.registry import OPTIMIZERS
from tests.finetune.helpers import (
    Interrupt,
    config,
    sentiment_data,
    stop_at_step,
    tiny_llama,
    train,
    untimed_log,
    weights,
    whole_and_resumed,
)


def test_run_writes_config_log_metrics_plot_checkpoint_and_model(tmp_path, tokenizer):
    result = train(config(tmp_path), tokenizer)
    run = result.run_dir
    saved = json.loads((run / "config.json").read_text())
    assert saved["lr"] == 1e-3 and saved["perturbation_scale"] == 1e-3  # defaults resolved
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["type"] == "eval"] == [0, 2, 4]
    assert all(r["projected_grad"] is not None for r in records if r["type"] == "train")
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"zero_shot", "dev", "test", "train_forward_passes", "best_step"}
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "checkpoint" / "trainable.safetensors").is_file()
    assert (run / "model" / "config.json").is_file()


def test_each_train_record_times_its_own_step_in_wall_and_cpu_seconds(tmp_path, tokenizer):
    result = train(config(tmp_path, eval_every=2), tokenizer)
    records = [json.loads(x) for x in (result.run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "train"]
    assert len(steps) == 4
    for r in steps:
        assert 0 < r["step_seconds"] <= r["time"]
        assert r["step_cpu_seconds"] > 0
    # Per step, not cumulative: the dev evaluation after step 2 is in "time", not in step 3's.
    evals = {r["step"]: r["time"] for r in records if r["type"] == "eval"}
    assert steps[2]["time"] - steps[2]["step_seconds"] >= evals[2]
    assert all("step_seconds" not in r for r in records if r["type"] == "eval")


def test_forward_passes_are_counted_for_training_and_evaluation_separately(tmp_path, tokenizer):
    metrics = train(config(tmp_path), tokenizer).metrics
    assert metrics["train_forward_passes"] == 2 * 4  # two closure evaluations per step
    assert metrics["train_model_calls"] == 2 * 4  # single-token candidates: one call each
    # dev (8 examples, one batch) at steps 0, 2, 4, then test (8 examples, one batch).
    assert metrics["eval_model_calls"] == 3 + 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("optimizer", "tuning"), [("adamezo", "full"), ("zo-adam", "lora"), ("fo-adam", "full")]
)
def test_interrupted_run_resumed_from_its_checkpoint_ends_bitwise_identical(
    tmp_path, tokenizer, optimizer, tuning
):
    settings = dict(optimizer=optimizer, tuning=tuning, steps=6, eval_every=3, checkpoint_every=2)
    whole, resumed = whole_and_resumed(tmp_path, tokenizer, 5, **settings)  # last checkpoint: 4
    a, b = weights(whole.model), weights(resumed.model)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert untimed_log(whole.run_dir) == untimed_log(resumed.run_dir)


def test_a_resumed_run_counts_the_time_before_its_checkpoint(tmp_path, tokenizer):
    settings = dict(steps=6, eval_every=3, checkpoint_every=4)
    with pytest.raises(Interrupt):  # the last checkpoint is step 4
        train(config(tmp_path, **settings), tokenizer, callbacks=[stop_at_step(5)])
    resumed = train(config(tmp_path, resume=True, **settings), tokenizer)
    records = [json.loads(x) for x in (resumed.run_dir / "log.jsonl").read_text().splitlines()]
    times = [r["time"] for r in records if r["type"] == "train"]
    assert times == sorted(times)  # the clock goes on from the checkpoint, not from 0
    assert resumed.metrics["train_seconds"] > times[3]  # all of it, not the last piece


def test_training_changes_the_weights(tmp_path, tokenizer):
    start = weights(tiny_llama(tokenizer, dtype=torch.float32))
    cfg = config(tmp_path, keep_best=False, eval_at_start=False)
    trained = weights(train(cfg, tokenizer).model)
    assert any(not torch.equal(start[k], trained[k]) for k in start)


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_the_same_seed_gives_bitwise_identical_weights_whatever_ran_before(
    tmp_path, tokenizer, tuning
):
    cfg = dict(keep_best=False, eval_at_start=False, test=False, tuning=tuning)
    torch.manual_seed(123)  # random numbers drawn before the run (e.g. LoRA init) must not matter
    one = weights(train(config(tmp_path / "1", **cfg), tokenizer).model)
    torch.manual_seed(456)
    two = weights(train(config(tmp_path / "2", **cfg), tokenizer).model)
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_early_stopping_ends_the_run_after_patience_evaluations_without_improvement(
    tmp_path, tokenizer
):
    # lr 0 with exact steps keeps the weights, so the dev loss, bitwise constant: never an
    # improvement. (In place, float32 weights move by about 1e-8 at lr 0.)
    settings = dict(lr=0.0, steps=10, eval_every=1, patience=2, perturbation="exact")
    result = train(config(tmp_path, **settings), tokenizer)
    assert result.metrics["stopped_early"] is True
    assert result.metrics["steps"] == 2
    assert result.metrics["best_step"] == 0


def test_the_best_dev_weights_are_restored_at_the_end(tmp_path, tokenizer):
    result = train(config(tmp_path, lr=3e-2, steps=6, eval_every=2), tokenizer)
    evals = [
        json.loads(line)
        for line in (result.run_dir / "log.jsonl").read_text().splitlines()
        if json.loads(line)["type"] == "eval"
    ]
    best = min(evals, key=lambda r: r["dev_loss"])
    assert result.metrics["best_step"] == best["step"]
    assert result.metrics["dev"]["dev_loss"] == best["dev_loss"]


def test_lora_trains_only_the_adapter(tmp_path, tokenizer):
    model = tiny_llama(tokenizer, dtype=torch.float32)
    base = weights(model)
    result = run_finetune(
        config(tmp_path, tuning="lora", lr=1e-2, keep_best=False),
        model=model,
        tokenizer=tokenizer,
        data=sentiment_data(),
    )
    trained = result.model
    lora = {n: p for n, p in trained.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert result.metrics["trainable_parameters"] == sum(p.numel() for p in lora.values())
    for name, tensor in trained.get_base_model().state_dict().items():
        if "lora_" not in name:
            original = name.replace(".base_layer", "")
            assert torch.equal(tensor, base[original]), name
    assert any(torch.count_nonzero(p) for n, p in lora.items() if "lora_B" in n)
    assert (result.run_dir / "model" / "adapter_config.json").is_file()


def test_prefix_tuning_trains_only_the_prefix(tmp_path, tokenizer):
    result = train(config(tmp_path, tuning="prefix", lr=1e-2, keep_best=False), tokenizer)
    names = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert names and all("prompt_encoder" in n for n in names)


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - {"mezo-switch"}))
def test_every_optimizer_trains_and_logs_its_forward_passes(tmp_path, tokenizer, name):
    cfg = config(tmp_path, optimizer=name, steps=2, eval_every=2, keep_best=False, test=False)
    result = train(cfg, tokenizer)
    per_step = {"hizoo": 3, "fo-adam": 1, "fzoo": 9, "zo-muon": 5}.get(name, 2)
    assert result.metrics["train_forward_passes"] == per_step * 2


@pytest.mark.slow
def test_mezo_switch_follows_the_update_norms_of_an_adamezo_run(tmp_path, tokenizer):
    source = train(config(tmp_path / "ada", keep_best=False, test=False), tokenizer)
    cfg = config(
        tmp_path / "switch",
        optimizer="mezo-switch",
        norm_schedule=str(source.run_dir),
        keep_best=False,
        test=False,
    )
    result = train(cfg, tokenizer)

    def norms(run_dir):
        lines = (run_dir / "log.jsonl").read_text().splitlines()
        return [json.loads(x)["update_norm"] for x in lines if json.loads(x)["type"] == "train"]

    torch.testing.assert_close(norms(result.run_dir), norms(source.run_dir), rtol=1e-5, atol=0)


def test_bfloat16_weights_train_and_stay_bfloat16(tmp_path, tokenizer):
    model = tiny_llama(tokenizer, dtype=torch.bfloat16)
    cfg = config(tmp_path, dtype="bfloat16", steps=2, keep_best=False, test=False)
    result = run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data())
    assert all(p.dtype == torch.bfloat16 for p in result.model.parameters())
    assert result.metrics["dev"]["dev_loss"] == result.metrics["dev"]["dev_loss"]  # not NaN


def test_first_order_adam_evaluates_with_dropout_off(tmp_path, tokenizer):
    # lr 0 leaves the weights as they are, so every dev evaluation must give the same loss;
    # with attention dropout left on during evaluation they would differ.
    model = tiny_llama(tokenizer, dtype=torch.float32, attention_dropout=0.5)
    cfg = config(
        tmp_path, optimizer="fo-adam", lr=0.0, steps=2, eval_every=1, test=False, save_model=False
    )
    result = run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data())
    records = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    dev_losses = [r["dev_loss"] for r in records if r["type"] == "eval"]
    assert len(dev_losses) == 3
    assert dev_losses == [dev_losses[0]] * 3
    assert model.training  # training itself still runs with dropout on


def test_progress_bar_shows_steps_per_second_even_when_steps_are_slow(tmp_path):
    bar = progress_bar(10, 0, "train", enabled=True)
    try:
        # One step in 5 s: tqdm's default format would show "5.00s/step".
        shown = bar.format_meter(**{**bar.format_dict, "n": 1, "elapsed": 5.0})
    finally:
        bar.close()
    assert "0.20step/s" in shown
    assert "s/step" not in shown
