import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from adamezo.finetune.loop import run_finetune
from adamezo.finetune.models import truncate_layers
from adamezo.finetune.portable import TRAINING, base_model_id
from adamezo.finetune.tuning import load_adapter
from tests.finetune.helpers import config, sentiment_data, tiny_llama, train

REPO = Path(__file__).resolve().parents[2]
HUB_ID = "tiny/llama"  # what helpers.config names the model: a hub id


def lora_run(tmp_path, tokenizer, **overrides):
    return train(config(tmp_path, tuning="lora", lr=1e-2, **overrides), tokenizer)


def test_the_builtin_model_is_named_by_its_hub_id():
    assert base_model_id("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_local_model_directory_stays_its_absolute_path(tiny_model_dir):
    assert base_model_id(str(tiny_model_dir)) == str(Path(tiny_model_dir).resolve())


def test_a_saved_adapter_names_its_hub_base_model_and_is_a_causal_lm(tmp_path, tokenizer):
    result = lora_run(tmp_path, tokenizer)
    saved = json.loads((result.run_dir / "model" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == HUB_ID
    assert saved["task_type"] == "CAUSAL_LM"


def test_the_model_card_says_how_the_adapter_was_trained(tmp_path, tokenizer):
    result = lora_run(tmp_path, tokenizer)
    card = (result.run_dir / "model" / "README.md").read_text()
    assert card.startswith(f"---\nbase_model: {HUB_ID}\nlibrary_name: peft\n")
    for text in ("`adamezo` optimizer", "| lr | 0.01 |", "| steps | 4 of 4 |", "task `sst2`"):
        assert text in card
    assert f"dev_loss {result.metrics['dev']['dev_loss']:.4f}" in card


def mirror(root: Path, tokenizer) -> Path:
    """A Hugging Face cache (``HF_HOME``) holding only the base model, under its hub id."""
    repo = root / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    tiny_llama(tokenizer, dtype=torch.float32).save_pretrained(snapshot)  # the base train() uses
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return root


LOAD = """
import sys, torch
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    torch.save(model(input_ids=torch.tensor([[5, 17, 42, 9]])).logits, sys.argv[2])
"""


@pytest.mark.slow
def test_an_adapter_loads_with_auto_peft_from_the_hub_id_alone(tmp_path, tokenizer):
    result = lora_run(tmp_path / "train", tokenizer)
    adapter = tmp_path / "elsewhere" / "adapter"
    adapter.parent.mkdir()
    os.rename(result.run_dir / "model", adapter)  # no trace of the run directory is left
    env = {
        **os.environ,
        "HF_HOME": str(mirror(tmp_path / "hf", tokenizer)),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO / "src"),
    }
    out = tmp_path / "logits.pt"
    subprocess.run(
        [sys.executable, "-c", LOAD, str(adapter), str(out)], env=env, check=True, timeout=300
    )
    with torch.no_grad():
        expected = result.model.eval()(input_ids=torch.tensor([[5, 17, 42, 9]])).logits
    torch.testing.assert_close(torch.load(out), expected)


def truncated_lora_run(tmp_path, tokenizer):
    model = tiny_llama(tokenizer, dtype=torch.float32)
    truncate_layers(model, 1)
    cfg = config(tmp_path, tuning="lora", num_layers=1)
    return run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data())


def test_an_adapter_of_a_truncated_model_records_its_depth(tmp_path, tokenizer):
    result = truncated_lora_run(tmp_path, tokenizer)
    record = json.loads((result.run_dir / "model" / TRAINING).read_text())
    assert (record["num_hidden_layers"], record["truncated_to_num_layers"]) == (1, 1)
    assert "first 1 transformer blocks" in (result.run_dir / "model" / "README.md").read_text()


def test_an_adapter_of_a_truncated_model_refuses_a_model_of_another_depth(tmp_path, tokenizer):
    result = truncated_lora_run(tmp_path, tokenizer)
    with pytest.raises(ValueError, match=r"first 1 transformer blocks.*has 2.*num_layers=1"):
        load_adapter(tiny_llama(tokenizer, dtype=torch.float32), result.run_dir / "model")


def test_an_adapter_of_a_truncated_model_loads_onto_the_same_depth(tmp_path, tokenizer):
    result = truncated_lora_run(tmp_path, tokenizer)
    model = tiny_llama(tokenizer, dtype=torch.float32)
    truncate_layers(model, 1)
    assert load_adapter(model, result.run_dir / "model").mode == "lora"


def test_loading_an_adapter_raises_no_future_warning(tmp_path, tokenizer):
    result = truncated_lora_run(tmp_path, tokenizer)
    model = tiny_llama(tokenizer, dtype=torch.float32)
    truncate_layers(model, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        load_adapter(model, result.run_dir / "model")


def test_a_fully_tuned_model_gets_a_model_card_naming_its_base(tmp_path, tokenizer):
    result = train(config(tmp_path), tokenizer)
    card = (result.run_dir / "model" / "README.md").read_text()
    assert card.startswith(f"---\nbase_model: {HUB_ID}\nlibrary_name: transformers\n")


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records what a push would create and upload."""

    created: ClassVar[list[str]] = []
    uploaded: ClassVar[dict[str, set[str]]] = {}

    def create_repo(self, repo_id, exist_ok=False):
        self.created.append(repo_id)

    def upload_folder(self, folder_path, repo_id, commit_message):
        self.uploaded[repo_id] = {p.name for p in Path(folder_path).iterdir()}
        return f"https://hub.example/{repo_id}/commit/1"


def test_push_to_hub_uploads_the_adapter_with_its_card(tmp_path, tokenizer, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.created, FakeHub.uploaded = [], {}
    lora_run(tmp_path, tokenizer, push_to_hub="me/tiny-sentiment")
    assert FakeHub.created == ["me/tiny-sentiment"]
    files = FakeHub.uploaded["me/tiny-sentiment"]
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", TRAINING} <= files


@pytest.mark.parametrize("repo", ["no-namespace", "a/b/c", "me/with space", ""])
def test_push_to_hub_refuses_a_malformed_repository_id(tmp_path, repo):
    with pytest.raises(ValueError, match="push_to_hub must be a hub repository id"):
        config(tmp_path, push_to_hub=repo).validate()


def test_push_to_hub_needs_the_exported_model(tmp_path):
    with pytest.raises(ValueError, match="needs save_model"):
        config(tmp_path, push_to_hub="me/x", save_model=False).validate()
