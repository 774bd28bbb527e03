import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

from adamezo.integrations import ZOTrainer
from tests.finetune.helpers import tiny_llama


def dataset(tokenizer, n=16, length=12):
    texts = ["the film was great and the actors were great", "a dull, lifeless mess of a plot"]
    rows = []
    for i in range(n):
        ids = tokenizer(texts[i % 2] * 2).input_ids[:length]
        rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)})
    return rows


def make_trainer(tmp_path, tokenizer, callbacks=(), model=None, **overrides):
    settings = dict(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    settings.update(overrides)
    data = dataset(tokenizer)
    return ZOTrainer(
        model=model if model is not None else tiny_llama(tokenizer, dtype=torch.float32),
        args=TrainingArguments(**settings),
        train_dataset=data,
        eval_dataset=data[:4],
        callbacks=list(callbacks),
        zo_optimizer="adamezo",
        zo_kwargs={"perturbation_scale": 1e-3},
    )


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.slow
def test_zo_trainer_trains_logs_evaluates_calls_back_and_checkpoints(tmp_path, tokenizer):
    steps = []

    class Recorder(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    trainer = make_trainer(tmp_path, tokenizer, callbacks=[Recorder()])
    before = params(trainer.model)
    trainer.train()
    after = params(trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    losses = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in losses] == [1, 2, 3, 4]
    assert all(h["forward_passes"] == 2 * h["step"] for h in losses)
    assert all("projected_grad" in h and "grad_norm" not in h for h in losses)
    assert [h["step"] for h in trainer.state.log_history if "eval_loss" in h] == [2, 4]
    assert steps == [1, 2, 3, 4]
    saved = torch.load(tmp_path / "checkpoint-2" / "optimizer.pt", weights_only=True)
    assert saved["zo"]["optimizer"] == "AdaMeZO" and saved["zo"]["steps"] == 2


@pytest.mark.slow
def test_zo_trainer_resumed_from_a_checkpoint_ends_bitwise_identical(tmp_path, tokenizer):
    whole = make_trainer(tmp_path / "whole", tokenizer)
    whole.train()
    resumed = make_trainer(tmp_path / "resumed", tokenizer)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-2"))
    a, b = params(whole.model), params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.optimizer.state_dict()["zo"] == whole.optimizer.state_dict()["zo"]


def accumulation_run(tmp_path, tokenizer, batch, accumulation):
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        max_steps=3,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        eval_strategy="no",
        save_strategy="no",
    )
    trainer.train()
    return trainer


def test_zo_trainer_with_gradient_accumulation_steps_like_one_big_batch(tmp_path, tokenizer):
    big = accumulation_run(tmp_path / "big", tokenizer, batch=8, accumulation=1)
    micro = accumulation_run(tmp_path / "micro", tokenizer, batch=2, accumulation=4)
    a, b = params(big.model), params(micro.model)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-5)  # updates: ~2e-3


def test_zo_trainer_with_gradient_accumulation_takes_one_step_per_accumulated_batch(
    tmp_path, tokenizer
):
    trainer = accumulation_run(tmp_path, tokenizer, batch=2, accumulation=4)
    losses = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["forward_passes"] for h in losses] == [2, 4, 6]


def test_zo_trainer_refuses_an_unknown_optimizer(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="zo_optimizer must be one of"):
        ZOTrainer(
            model=tiny_llama(tokenizer),
            args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
            zo_optimizer="sgd",
        )


def test_zo_trainer_on_a_lora_model_changes_only_the_adapter(tmp_path, tokenizer):
    import peft

    lora = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = peft.get_peft_model(tiny_llama(tokenizer, dtype=torch.float32), lora)
    trainer = make_trainer(
        tmp_path, tokenizer, model=model, max_steps=3, eval_strategy="no", save_strategy="no"
    )
    before = params(trainer.model)
    trainer.train()
    after = params(trainer.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    adapter = {k for k in before if "lora_" in k}
    assert adapter and changed == adapter  # every adapter tensor moved, nothing else did
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["forward_passes"] for h in steps] == [2, 4, 6]


@pytest.mark.parametrize("flag", ["fp16", "bf16"])
def test_zo_trainer_trains_in_half_precision_without_loss_scaling(tmp_path, tokenizer, flag):
    trainer = make_trainer(
        tmp_path, tokenizer, eval_strategy="no", save_strategy="no", **{flag: True}
    )
    # On a GPU accelerate sets up a GradScaler for fp16, whose step asserts when no backward was
    # scaled ("Attempted step but _scale is None"); put one in place as it would.
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu")
    seen = []
    trainer.model.lm_head.register_forward_hook(
        lambda module, inputs, output: seen.append((torch.is_autocast_enabled("cpu"), output.dtype))
    )
    before = params(trainer.model)
    trainer.train()
    assert trainer.accelerator.scaler is None
    after = params(trainer.model)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert trainer.state.global_step == 4
    # bf16: what `adamezo finetune --mixed-precision bf16` does too, the forward passes under
    # autocast, the weights (and so perturbation and update) in float32. fp16: accelerate
    # (1.16) autocasts only off the CPU, so on the CPU the passes stay float32.
    expected = (False, torch.float32) if flag == "fp16" else (True, torch.bfloat16)
    assert seen and set(seen) == {expected}
    assert {p.dtype for p in after.values()} == {torch.float32}


def test_zo_trainer_on_fsdp2_model_calls_prepare_fsdp(tmp_path, tokenizer, monkeypatch):
    from adamezo.integrations import hf_trainer

    prepared = []
    monkeypatch.setattr(hf_trainer, "prepare_fsdp", prepared.append)
    fsdp = pytest.importorskip("torch.distributed.fsdp")
    model = tiny_llama(tokenizer, dtype=torch.float32)
    # The class fully_shard gives a module: its own class with FSDPModule mixed in (a real
    # sharded forward needs a process group; tests/test_fsdp.py covers prepare_fsdp itself).
    layer = model.model.layers[0]
    layer.__class__ = type("FSDPLayer", (fsdp.FSDPModule, type(layer)), {})
    trainer = make_trainer(tmp_path, tokenizer)
    trainer.model = model  # as the Trainer's FSDP preparation leaves it
    trainer.create_optimizer()  # what the Trainer's loop calls before the first step
    trainer._prepare_sharded(model)  # training_step's check: done already, not repeated
    assert prepared == [model]


def test_zo_trainer_leaves_an_unsharded_model_alone(tmp_path, tokenizer, monkeypatch):
    from adamezo.integrations import hf_trainer

    prepared = []
    monkeypatch.setattr(hf_trainer, "prepare_fsdp", prepared.append)
    make_trainer(tmp_path, tokenizer, eval_strategy="no", save_strategy="no").train()
    assert prepared == []
