"""Log-probabilities of continuations and greedy answers from a causal LM, in as few forward passes
as the arithmetic allows.

A batch of prompts is right-padded to its longest member and run once. When every candidate of
every example is one token long, that single pass scores them all: the logits at each prompt's last
position hold every candidate's log-probability. Longer candidates continue from the prompt's KV
cache, one row per candidate, so the prompt is never recomputed. An example with a single
continuation (the gold answer of a generation or multiple-choice example in training) is run as
prompt + continuation in one pass. Only the positions whose logits are needed go through the
output projection. Every path gives the scores of the naive one-sequence-per-candidate way (the
tests check it in float64).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import nn

# The encoding half lives in its own module; these names stay importable from here.
from adamezo.finetune.encoding import EncodedExample, ExampleLike, TokenEncoder, TokenIds
from adamezo.finetune.precision import forward_precision

__all__ = [
    "CausalLMRunner",
    "EncodedExample",
    "ExampleLike",
    "TokenEncoder",
    "TokenIds",
    "candidate_scores",
    "classification_losses",
    "continuation_logprobs",
    "greedy_decode",
    "lm_losses",
    "pad_right",
]


@functools.cache
def _slices_by_mask() -> bool:
    """Whether transformers takes a 2-D boolean ``logits_to_keep`` (5.23 on); older releases
    read it as positions, so their logits are computed whole and indexed here instead."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    kept = slice_logits_to_keep(torch.zeros(1, 2, 1), torch.tensor([[True, False]]))
    return tuple(kept.shape) == (1, 1)


class CausalLMRunner:
    """One forward call of a causal LM on a right-padded batch, continuing an optional KV cache.

    It passes explicit position ids (a padded row's positions count only its real tokens), asks
    the model for logits only where ``keep`` is true, and counts its calls in ``forward_calls``.
    ``prefix`` is a PEFT prefix-tuning model whose virtual tokens start every cache;
    ``autocast`` a dtype the model's forward runs in under ``torch.autocast`` (mixed precision).
    """

    def __init__(
        self,
        model: nn.Module,
        prefix: nn.Module | None = None,
        pad_id: int = 0,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.model = model
        self.prefix = prefix
        self.pad_id = pad_id
        self.autocast = autocast
        self.forward_calls = 0
        parameters = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in parameters and _slices_by_mask()
        # transformers renamed past_key_values to cache (and warns on the old name): pass and
        # read whichever this model's forward takes.
        self._cache_name = "cache" if "cache" in parameters else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Dropout off while inside (evaluation), the modules' previous modes restored after."""
        modules = [m for m in (self.model, self.prefix) if m is not None]
        modes = [m.training for m in modules]
        for module in modules:
            module.eval()
        try:
            yield
        finally:
            # The prefix model wraps the base model: restore it first, the base model last.
            for module, mode in reversed(list(zip(modules, modes, strict=True))):
                module.train(mode)

    @property
    def prefix_length(self) -> int:
        """The virtual tokens of the prefix, which take positions before every sequence."""
        if self.prefix is None:
            return 0
        return self.prefix.peft_config[self.prefix.active_adapter].num_virtual_tokens

    def start(self, batch_size: int) -> tuple[Any, int]:
        """A fresh cache (the prefix's virtual tokens, or none) and its length."""
        if self.prefix is None:
            return None, 0
        return self.prefix.get_prompt(batch_size), self.prefix_length

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
        keep: torch.Tensor,
    ) -> tuple[torch.Tensor, Any]:
        """Logits (float32 or wider, a row per true entry of ``keep``, row-major) and the cache.

        ``attention_mask`` covers the cache and the new tokens; ``keep`` has ``input_ids``' shape.
        """
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            self._cache_name: cache,
            "use_cache": True,
        }
        if self._keeps_logits:
            kwargs["logits_to_keep"] = keep
        with forward_precision(input_ids.device.type, self.autocast):
            out = self.model(**kwargs)
        self.forward_calls += 1
        logits = out.logits if self._keeps_logits else out.logits[keep]
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()  # log-softmax over the vocabulary needs the range
        return logits, getattr(out, self._cache_name)


def pad_right(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device):
    """(ids, mask) of shape (len(rows), longest row), real tokens first."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def continuation_logprobs(
    runner: CausalLMRunner, batch: Sequence[EncodedExample]
) -> list[list[torch.Tensor]]:
    """log p(token | prompt, earlier tokens) for every token of every continuation:
    ``result[i][j]`` is a 1-D tensor as long as ``batch[i].continuations[j]``."""
    if all(len(ex.continuations) == 1 for ex in batch):
        return _single_pass(runner, batch)
    return _shared_prompt(runner, batch)


def _positions(mask: torch.Tensor, start: torch.Tensor | int) -> torch.Tensor:
    """Position ids of a right-padded block: each row counts on from ``start`` (an int, or one
    per row as a column); padding gets positions too, which its mask makes irrelevant."""
    return start + torch.arange(mask.shape[1], device=mask.device).expand(mask.shape)


def _gather(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _single_pass(runner: CausalLMRunner, batch: Sequence[EncodedExample]):
    # prompt + continuation minus its last token: position k predicts token k + 1.
    rows = [ex.prompt + ex.continuations[0][:-1] for ex in batch]
    ids, mask = pad_right(rows, runner.pad_id, runner.device)
    cache, prefix_len = runner.start(len(batch))
    keep = torch.zeros_like(mask, dtype=torch.bool)
    targets = []
    for i, ex in enumerate(batch):
        keep[i, len(ex.prompt) - 1 : len(rows[i])] = True
        targets.extend(ex.continuations[0])
    logits, _ = runner(
        ids,
        _with_prefix(mask, prefix_len),
        _positions(mask, prefix_len),
        cache,
        keep,
    )
    logprobs = _gather(logits, torch.tensor(targets, device=logits.device))
    out, start = [], 0
    for ex in batch:
        n = len(ex.continuations[0])
        out.append([logprobs[start : start + n]])
        start += n
    return out


def _with_prefix(mask: torch.Tensor, prefix_len: int) -> torch.Tensor:
    if prefix_len == 0:
        return mask
    return torch.cat([mask.new_ones(mask.shape[0], prefix_len), mask], dim=1)


class _Prompts(NamedTuple):
    """A batch of prompts after one forward pass, and what continuing from it takes."""

    logits: torch.Tensor  # row i: the next-token logits after prompt i
    cache: Any
    mask: torch.Tensor  # the attention mask, the prefix's virtual tokens included
    lengths: torch.Tensor  # the real tokens of each prompt
    prefix_len: int


def _run_prompts(runner: CausalLMRunner, prompts: Sequence[TokenIds]) -> _Prompts:
    """Run the right-padded prompts once, keeping the logits of each one's last token only."""
    ids, mask = pad_right(prompts, runner.pad_id, runner.device)
    lengths = mask.sum(1)
    cache, prefix_len = runner.start(len(prompts))
    full_mask = _with_prefix(mask, prefix_len)
    keep = torch.zeros_like(mask, dtype=torch.bool)
    keep[torch.arange(len(prompts)), lengths - 1] = True
    logits, cache = runner(ids, full_mask, _positions(mask, prefix_len), cache, keep)
    return _Prompts(logits, cache, full_mask, lengths, prefix_len)


def _shared_prompt(runner: CausalLMRunner, batch: Sequence[EncodedExample]):
    last_logits, cache, full_mask, lengths, prefix_len = _run_prompts(
        runner, [ex.prompt for ex in batch]
    )
    first = torch.log_softmax(last_logits, dim=-1)  # row i: next-token log-probs after prompt i
    out = [[first[i, c[0]].reshape(1) for c in ex.continuations] for i, ex in enumerate(batch)]
    # Candidates longer than one token continue from their prompt's cache, one row each.
    longer = [
        (i, j) for i, ex in enumerate(batch) for j, c in enumerate(ex.continuations) if len(c) > 1
    ]
    if not longer:
        return out
    source = torch.tensor([i for i, _ in longer], device=lengths.device)
    cache.reorder_cache(source)
    tails = [batch[i].continuations[j] for i, j in longer]
    cont_ids, cont_mask = pad_right([t[:-1] for t in tails], runner.pad_id, runner.device)
    row_lengths = lengths[source]
    logits, _ = runner(
        cont_ids,
        torch.cat([full_mask[source], cont_mask], dim=1),
        _positions(cont_mask, (row_lengths + prefix_len).unsqueeze(1)),
        cache,
        cont_mask.bool(),
    )
    targets = torch.tensor([tok for t in tails for tok in t[1:]], device=logits.device)
    logprobs = _gather(logits, targets)
    start = 0
    for (i, j), tail in zip(longer, tails, strict=True):
        n = len(tail) - 1
        out[i][j] = torch.cat([out[i][j], logprobs[start : start + n]])
        start += n
    return out


def candidate_scores(runner: CausalLMRunner, batch: Sequence[EncodedExample]) -> list[torch.Tensor]:
    """Each candidate's mean per-token log-probability, one 1-D tensor per example.

    See docs/algorithms.md §9."""
    return [
        torch.stack([lp.mean() for lp in per_candidate])
        for per_candidate in continuation_logprobs(runner, batch)
    ]


def classification_losses(scores: Sequence[torch.Tensor], labels: Sequence[int]) -> torch.Tensor:
    """Per example: cross-entropy over its candidates, their mean log-probabilities as logits."""
    return torch.stack(
        [-torch.log_softmax(s, dim=0)[label] for s, label in zip(scores, labels, strict=True)]
    )


def lm_losses(runner: CausalLMRunner, batch: Sequence[EncodedExample]) -> torch.Tensor:
    """Per example: the mean negative log-likelihood of its single continuation's tokens."""
    return torch.stack([-lp[0].mean() for lp in continuation_logprobs(runner, batch)])


@torch.no_grad()
def greedy_decode(
    runner: CausalLMRunner,
    prompts: Sequence[TokenIds],
    stop_ids: frozenset[int],
    max_new_tokens: int = 50,
    pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[list[int]]:
    """Greedy continuation of each prompt, up to and including the first token in ``stop_ids``
    (or ``max_new_tokens``). Finished rows leave the batch, so they cost no more compute.

    ``pick`` maps the next-token logits (a row per active prompt) to the chosen token ids;
    default the argmax (greedy); :func:`sample_tokens` draws from the softmax instead."""
    logits, cache, full_mask, lengths, prefix_len = _run_prompts(runner, prompts)
    outputs: list[list[int]] = [[] for _ in prompts]
    active = torch.arange(len(prompts), device=lengths.device)
    positions = lengths + prefix_len
    for step in range(max_new_tokens):
        tokens = logits.argmax(-1) if pick is None else pick(logits)
        still = []
        for row, (index, token) in enumerate(zip(active.tolist(), tokens.tolist(), strict=True)):
            outputs[index].append(token)
            if token not in stop_ids:
                still.append(row)
        if not still or step == max_new_tokens - 1:
            break
        if len(still) < len(active):
            rows = torch.tensor(still, device=lengths.device)
            cache.reorder_cache(rows)
            active, tokens, full_mask = active[rows], tokens[rows], full_mask[rows]
            positions = positions[rows]
        full_mask = torch.cat([full_mask, full_mask.new_ones(len(active), 1)], dim=1)
        step_ids = tokens.unsqueeze(1)
        logits, cache = runner(
            step_ids,
            full_mask,
            (positions + step).unsqueeze(1),
            cache,
            torch.ones_like(step_ids, dtype=torch.bool),
        )
    return outputs


def sample_tokens(logits: torch.Tensor) -> torch.Tensor:
    """One token per row drawn from softmax(logits), with torch's global generator of the
    logits' device (which the zeroth-order optimizers rewind between the passes of a step)."""
    return torch.multinomial(torch.softmax(logits.float(), dim=-1), 1).squeeze(-1)
