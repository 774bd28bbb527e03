"""A reward function as ``ZOTrainer``'s objective: each batch's prompts are completed greedily
under the perturbation and the step minimises minus their mean reward.

``ZOTrainer(..., objective=reward)`` takes the signature ``adamezo finetune --reward`` takes:
``reward(prompts, completions, rows)`` returning one number per example (higher is better). The
batch's ``input_ids`` under its ``attention_mask`` are the prompts (left or right padding alike);
completions stop at the tokenizer's end-of-sequence token or after ``max_new_tokens``; ``rows``
holds each example's other batch columns (tensors as lists; keep text columns with
``remove_unused_columns=False`` and a collator that passes them through).
"""

from __future__ import annotations

from typing import Any

import torch

from adamezo.rewards import RewardFn, call_reward, function_name

PROMPT_KEYS = ("input_ids", "attention_mask")


class TrainerReward:
    """Minus the mean reward of a batch's greedy completions (see the module docstring)."""

    def __init__(self, function: RewardFn, tokenizer: Any, max_new_tokens: int = 50) -> None:
        if not callable(function):
            raise TypeError(
                "objective must be a reward function (prompts, completions, rows) -> numbers, "
                f"got {type(function).__name__}"
            )
        if tokenizer is None:
            raise ValueError(
                "objective: a reward needs the tokenizer to decode prompts and completions; "
                "pass processing_class=tokenizer to ZOTrainer"
            )
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens}")
        self.function = function
        self.name = function_name(function)
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        eos = tokenizer.eos_token_id
        self.stop = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])

    @torch.no_grad()
    def loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """Minus the mean reward of ``inputs``' completions by ``model`` as it is now."""
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        prompts = [row[keep.bool()].tolist() for row, keep in zip(ids, mask, strict=True)]
        outputs = self._greedy(model, prompts, ids.device)
        decode = self.tokenizer.decode
        values = call_reward(
            self.function,
            self.name,
            [decode(p, skip_special_tokens=True) for p in prompts],
            [decode(o, skip_special_tokens=True) for o in outputs],
            batch_rows(inputs, len(prompts)),
        )
        return -torch.tensor(values, dtype=torch.float64).mean()

    def _greedy(self, model: Any, prompts: list[list[int]], device: Any) -> list[list[int]]:
        """Greedy continuations (``generate`` on the prompts left-padded), up to the first
        end-of-sequence token."""
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
            do_sample=False, pad_token_id=pad, eos_token_id=sorted(self.stop) or None,
        )  # fmt: skip
        completions = []
        for row in out[:, width:].tolist():
            cut = next((i + 1 for i, t in enumerate(row) if t in self.stop), len(row))
            completions.append(row[:cut])
        return completions


def batch_rows(inputs: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Each example's batch columns besides the prompt's ids and mask."""
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, value in inputs.items():
        if key in PROMPT_KEYS:
            continue
        values = value.tolist() if isinstance(value, torch.Tensor) else value
        if isinstance(values, list | tuple) and len(values) == count:
            for row, item in zip(rows, values, strict=True):
                row[key] = item
    return rows
