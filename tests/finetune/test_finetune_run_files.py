"""Runs on synthetic files in the tasks' original formats: what the CLI reports, evaluating a
run's weights, and the pipeline on generation and multiple-choice tasks."""

import json

import pytest
import torch

from adamezo.cli import main
from adamezo.finetune.evaluate import evaluate_model, evaluate_run
from adamezo.finetune.loop import run_finetune
from tests.finetune.helpers import config, sentiment_data, tiny_llama, write_sst2
from tests.tasks.task_files import write_jsonl, write_text

pytestmark = pytest.mark.usefixtures("no_hub")

SIZES = ["--n-train", "16", "--n-dev", "8", "--n-test", "8", "--batch-size", "4"]


def finetune(tiny_model_dir, data_dir, run, *flags):
    args = ["finetune", "--model", str(tiny_model_dir), "--task", "sst2"]
    args += ["--data-dir", str(data_dir), *SIZES, "--steps", "2", "--eval-every", "2"]
    return main([*args, "--output-dir", str(run), "--no-progress", *flags])


def test_split_notes_reach_the_cli_summary_without_progress_output(
    tmp_path, tiny_model_dir, capsys
):
    data = write_sst2(tmp_path / "data")  # no validation.tsv: dev and test come from train
    assert finetune(tiny_model_dir, data, tmp_path / "run", "--no-save-model") == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert len(summary["data_notes"]) == 1
    assert "sst2 has no validation split" in summary["data_notes"][0]
    assert summary["data_source"].endswith("train.tsv")


@pytest.mark.parametrize(("keep_best", "chosen"), [(True, "best"), (False, "checkpoint")])
def test_eval_of_a_run_without_an_exported_model_uses_the_weights_it_ends_with(
    tmp_path, tiny_model_dir, capsys, keep_best, chosen
):
    data = write_sst2(tmp_path / "data", n_validation=16)
    run = tmp_path / "run"
    # No zero-shot evaluation: the best weights are those of step 2, not the untrained ones.
    flags = ["--tuning", "lora", "--lr", "0.05", "--no-save-model", "--no-eval-at-start"]
    flags += [] if keep_best else ["--no-keep-best"]
    assert finetune(tiny_model_dir, data, run, *flags) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--split", "test", "--no-progress"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["weights"] == chosen
    assert evaluated["data_notes"] == []
    # The run's final weights, rebuilt from the saved trainable tensors, give its test numbers...
    assert evaluated["test_loss"] == pytest.approx(metrics["test"]["test_loss"], abs=1e-6)
    # ... which the untrained model does not (so the weights were really loaded).
    assert metrics["best_step"] == 2
    base = evaluate_model(
        str(tiny_model_dir),
        "sst2",
        split="test",
        data_dir=str(data),
        n_dev=8,
        n_test=8,
        progress=False,
    )
    assert base["test_loss"] != pytest.approx(evaluated["test_loss"], abs=1e-6)


def test_eval_of_a_run_refuses_weights_it_does_not_have(tmp_path, tiny_model_dir):
    data = write_sst2(tmp_path / "data", n_validation=16)
    run = tmp_path / "run"
    assert finetune(tiny_model_dir, data, run, "--no-save-model", "--no-keep-best") == 0
    with pytest.raises(ValueError, match="has no model weights"):
        evaluate_run(str(run), weights="model")
    checkpoint = evaluate_run(str(run), weights="checkpoint", progress=False)
    assert checkpoint["weights_path"] == str(run / "checkpoint" / "trainable.safetensors")


def test_an_unsupported_tuning_mode_fails_before_the_weights_load(
    tmp_path, tiny_model_dir, monkeypatch
):
    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr("adamezo.finetune.builder.load_model", no_loading)
    cfg = config(tmp_path, model=str(tiny_model_dir), tuning="lora", lora_targets=["no_such"])
    with pytest.raises(ValueError, match="tuning='lora' is not supported"):
        run_finetune(cfg, data=sentiment_data())
    assert not (tmp_path / "run").exists()


def test_a_tuning_mode_that_fails_at_forward_time_fails_before_the_run_dir_is_claimed(
    tmp_path, tokenizer, monkeypatch
):
    import peft

    def unsupported(self, batch_size, task_ids=None):
        raise NotImplementedError("this model's cache cannot take a prefix")

    monkeypatch.setattr(peft.PeftModel, "get_prompt", unsupported)
    model = tiny_llama(tokenizer, dtype=torch.float32)
    cfg = config(tmp_path, tuning="prefix")
    with pytest.raises(ValueError, match=r"tuning='prefix'.*cannot take a prefix"):
        run_finetune(cfg, model=model, tokenizer=tokenizer, data=sentiment_data())
    assert not (tmp_path / "run").exists()  # a retry needs no --overwrite


def squad_files(root, n=12):
    def document(start):
        paragraphs = [
            {
                "context": f"Story {i}: a writer wrote it in {1900 + i}.",
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": f"Who wrote story {i}?",
                        "answers": [{"text": "a writer", "answer_start": 10}],
                    }
                ],
            }
            for i in range(start, start + n)
        ]
        return {"version": "1.1", "data": [{"title": "Stories", "paragraphs": paragraphs}]}

    write_text(root / "squad" / "train.json", json.dumps(document(0)))
    write_text(root / "squad" / "validation.json", json.dumps(document(100)))
    return root


def copa_files(root, n=12):
    def rows(start):
        return [
            {
                "premise": f"The film number {i} was great.",
                "choice1": "The actors were great.",
                "choice2": "The plot was a dull, lifeless mess.",
                "question": "cause" if i % 2 else "effect",
                "idx": i,
                "label": i % 2,
            }
            for i in range(start, start + n)
        ]

    write_jsonl(root / "copa" / "train.jsonl", rows(0))
    write_jsonl(root / "copa" / "validation.jsonl", rows(100))
    return root


def run_task(tmp_path, tokenizer, task, data_dir):
    cfg = config(
        tmp_path,
        task=task,
        data_dir=str(data_dir),
        steps=2,
        eval_every=2,
        n_train=8,
        n_dev=4,
        n_test=4,
        save_model=False,
    )
    model = tiny_llama(tokenizer, dtype=torch.float32)
    result = run_finetune(cfg, model=model, tokenizer=tokenizer)
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    return result.metrics, log


def test_squad_run_trains_on_the_answer_and_reports_f1_and_exact_match(tmp_path, tokenizer):
    metrics, log = run_task(tmp_path, tokenizer, "squad", squad_files(tmp_path / "data"))
    assert metrics["train_forward_passes"] == 2 * 2
    assert metrics["train_model_calls"] == 2 * 2  # prompt + answer: one call per closure
    for numbers in (metrics["zero_shot"], metrics["dev"]):
        assert 0.0 <= numbers["dev_exact_match"] <= numbers["dev_f1"] <= 1.0
    assert {"test_f1", "test_exact_match", "test_loss"} <= set(metrics["test"])
    # The evaluation inside training measures the loss only: one call, no greedy decoding.
    (mid,) = [r for r in log if r["type"] == "eval" and r["step"] == 2]
    assert mid["dev_forward_calls"] == 1 and "dev_f1" not in mid


def test_copa_run_trains_on_the_gold_choice_and_reports_accuracy(tmp_path, tokenizer):
    metrics, _ = run_task(tmp_path, tokenizer, "copa", copa_files(tmp_path / "data"))
    assert metrics["train_forward_passes"] == 2 * 2
    assert metrics["train_model_calls"] == 2 * 2  # the gold choice alone: one call per closure
    for numbers in (metrics["zero_shot"], metrics["dev"]):
        assert numbers["dev_accuracy"] in {0.0, 0.25, 0.5, 0.75, 1.0}
    assert metrics["test"]["test_accuracy"] in {0.0, 0.25, 0.5, 0.75, 1.0}
    # Ranking both multi-token choices: the prompts, then the choices from their cache.
    assert metrics["dev"]["dev_forward_calls"] == 2
    assert metrics["eval_model_calls"] == 3 * 2  # dev at steps 0 and 2, then test
