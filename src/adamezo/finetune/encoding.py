"""Token ids of prompts and continuations: a continuation reads as it would after its prompt, and
a prompt too long for the length limit loses tokens from its start, with one warning per encoder
(``TokenEncoder.survey`` gives how many of a split's prompts that cuts)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

TokenIds = tuple[int, ...]


class ExampleLike(Protocol):
    """What scoring reads from an example (``adamezo.tasks.Example`` has these fields)."""

    prompt: str
    candidates: tuple[str, ...]
    label: int | None
    target: str | None


@dataclass(frozen=True)
class EncodedExample:
    """An example as token ids: the prompt, then each continuation as it follows the prompt."""

    prompt: TokenIds
    continuations: tuple[TokenIds, ...]
    label: int | None = None


class TokenEncoder:
    """Tokenises prompts and continuations so that prompt + continuation reads as one text would.

    A continuation's tokens are those the tokenizer gives for ``prompt + continuation`` after the
    prompt's own tokens. Where the tokenizer merges across the boundary (the joint tokens do not
    start with the prompt's), the continuation is tokenised on its own and appended, so the prompt's
    tokens, and with them its KV cache, stay shared by every candidate.
    """

    def __init__(self, tokenizer: Any, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._newline_ids: frozenset[int] | None = None
        self._warned = False  # about prompts cut to max_length: once per encoder

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(message, UserWarning, stacklevel=3)

    def _cut(self, prompt_ids: TokenIds, room: int) -> TokenIds:
        """The last ``room`` tokens of the prompt, with a warning the first time any is cut."""
        if len(prompt_ids) > room:
            self._warn_once(
                f"a prompt of {len(prompt_ids)} tokens is longer than the {self.max_length}-token "
                "limit (max_length, else the model's positions): it loses tokens from its start, "
                "as does every longer prompt"
            )
        return prompt_ids[-room:]

    def prompt_ids(self, prompt: str) -> TokenIds:
        return tuple(self.tokenizer(prompt).input_ids)

    def continuation_ids(self, prompt: str, prompt_ids: TokenIds, continuation: str) -> TokenIds:
        joint = tuple(self.tokenizer(prompt + continuation).input_ids)
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return joint[len(prompt_ids) :]
        alone = tuple(self.tokenizer(continuation, add_special_tokens=False).input_ids)
        if not alone:
            raise ValueError(f"continuation {continuation!r} tokenises to no tokens")
        return alone

    def encode(
        self, prompt: str, continuations: Sequence[str], label: int | None
    ) -> EncodedExample:
        """Token ids of one prompt and its continuations; a prompt too long for ``max_length``
        loses tokens from its start (the end, next to the answer, matters most)."""
        prompt_ids = self.prompt_ids(prompt)
        conts = tuple(self.continuation_ids(prompt, prompt_ids, c) for c in continuations)
        if self.max_length is not None:
            room = self.max_length - max(len(c) for c in conts)
            if room < 1:
                raise ValueError(
                    f"max_length={self.max_length} leaves no room for the prompt next to a "
                    f"{max(len(c) for c in conts)}-token continuation"
                )
            prompt_ids = self._cut(prompt_ids, room)
        return EncodedExample(prompt_ids, conts, label)

    def for_scoring(self, example: ExampleLike) -> EncodedExample:
        """Every candidate, to rank them (classification and multiple choice)."""
        return self.encode(example.prompt, example.candidates, example.label)

    def for_lm_loss(self, example: ExampleLike) -> EncodedExample:
        """Only the gold continuation: a generation example's target, else the gold candidate."""
        if example.target is not None:
            return self.encode(example.prompt, (example.target,), None)
        if example.label is None:
            raise ValueError("an example without target or label has no gold continuation")
        return self.encode(example.prompt, (example.candidates[example.label],), None)

    def for_generation(self, example: ExampleLike, max_new_tokens: int = 0) -> TokenIds:
        """The prompt's ids, cut from its start so that ``max_new_tokens`` more fit in
        ``max_length`` (at least one prompt token stays)."""
        prompt_ids = self.prompt_ids(example.prompt)
        if self.max_length is None:
            return prompt_ids
        return self._cut(prompt_ids, max(1, self.max_length - max_new_tokens))

    def survey(self, examples: Sequence[ExampleLike], what: str) -> int:
        """How many of ``examples`` have a prompt that ``max_length`` cuts (next to its longest
        candidate or target); a warning gives the count and the limit, once per encoder."""
        if self.max_length is None:
            return 0
        over = 0
        for example in examples:
            prompt_ids = self.prompt_ids(example.prompt)
            continuations = example.candidates or ((example.target,) if example.target else ())
            longest = max(
                (len(self.continuation_ids(example.prompt, prompt_ids, c)) for c in continuations),
                default=0,
            )
            over += len(prompt_ids) + longest > self.max_length
        if over:
            self._warn_once(
                f"{over} of {len(examples)} {what} prompts are longer than the {self.max_length}-"
                "token limit (max_length, else the model's positions): each loses tokens from its "
                "start"
            )
        return over

    def newline_ids(self) -> frozenset[int]:
        """Ids of the vocabulary entries whose text contains a newline (generation stops there)."""
        if self._newline_ids is None:
            vocab = self.tokenizer.get_vocab().values()
            self._newline_ids = frozenset(
                i for i in vocab if "\n" in self.tokenizer.decode([i], skip_special_tokens=False)
            )
        return self._newline_ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)
