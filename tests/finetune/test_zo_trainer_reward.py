"""ZOTrainer(objective=reward): steps minimise minus the mean reward of greedy completions."""

import pytest
import torch
from transformers import TrainingArguments

from adamezo.integrations import ZOTrainer
from adamezo.integrations.reward import batch_rows
from adamezo.rewards import RewardFunctionError
from tests.finetune.helpers import tiny_llama

TEXTS = ["the film was", "a dull plot", "It was great.", "the story"]


def prompts(tokenizer, n=8):
    return [
        {"input_ids": torch.tensor(tokenizer(TEXTS[i % 4]).input_ids), "labels": torch.tensor([i])}
        for i in range(n)
    ]


def collate(rows):
    """Right-pads the prompts; the label column passes through as a tensor."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = r["input_ids"]
        mask[i, : len(r["input_ids"])] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.cat([r["labels"] for r in rows]),
    }


def trainer(tmp_path, tokenizer, reward, model=None, **overrides):
    settings = dict(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4,
        learning_rate=1e-2, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
        seed=0, disable_tqdm=True, remove_unused_columns=False,
    )  # fmt: skip
    settings.update(overrides)
    return ZOTrainer(
        model=model if model is not None else tiny_llama(tokenizer, dtype=torch.float32),
        args=TrainingArguments(**settings),
        train_dataset=prompts(tokenizer),
        data_collator=collate,
        processing_class=tokenizer,
        zo_optimizer="mezo",
        zo_kwargs={"perturbation_scale": 1e-3, "perturbation": "exact"},
        objective=reward,
        max_new_tokens=4,
    )


def test_the_logged_loss_is_minus_the_mean_reward_of_the_completions(tmp_path, tokenizer):
    seen = []

    def reward(prompts, completions, rows):
        seen.append((list(prompts), list(completions), [r["labels"] for r in rows]))
        return [float(len(c)) for c in completions]

    t = trainer(tmp_path, tokenizer, reward)
    t.train()
    losses = [entry["loss"] for entry in t.state.log_history if "loss" in entry]
    assert len(losses) == 3 and len(seen) == 6  # two passes per step
    texts, completions, labels = seen[0]
    # each prompt arrives with its own row (the Trainer shuffles the examples)
    assert texts == [TEXTS[label % 4] for label in labels] and len(set(labels)) == 4
    assert seen[1][0] == texts and all(isinstance(c, str) for c in completions)
    mean = [-sum(len(c) for c in s[1]) / 4 for s in seen[:2]]
    assert losses[0] == pytest.approx(sum(mean) / 2, abs=1e-6)


def test_a_raising_reward_names_itself_and_leaves_the_weights(tmp_path, tokenizer):
    def broken(prompts, completions, rows):
        raise KeyError("score")

    model = tiny_llama(tokenizer, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    t = trainer(tmp_path, tokenizer, broken, model=model)
    with pytest.raises(RewardFunctionError, match="broken raised KeyError"):
        t.train()
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_a_reward_needs_the_tokenizer(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="processing_class=tokenizer"):
        ZOTrainer(
            model=tiny_llama(tokenizer, dtype=torch.float32),
            args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[]),
            train_dataset=prompts(tokenizer),
            objective=lambda p, c, r: [0.0] * len(p),
        )


def test_batch_rows_split_the_other_columns_per_example():
    inputs = {"input_ids": torch.zeros(2, 3), "labels": torch.tensor([4, 5]), "text": ["a", "b"]}
    assert batch_rows(inputs, 2) == [{"labels": 4, "text": "a"}, {"labels": 5, "text": "b"}]
