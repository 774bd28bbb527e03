"""A tiny random Llama and a byte-level BPE tokenizer trained in a few milliseconds, offline."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

CORPUS = [
    "the film was great and the actors were great",
    "the film was terrible and the plot was terrible",
    "It was great. It was terrible. It was fine.",
    "Question: who wrote it? Answer: a writer\n",
    "Does this mean that it is true? Yes or No?\nYes\nNo\n",
    "a wonderful, moving story; a dull, lifeless mess",
]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_llama(tokenizer, *, layers: int = 2, dtype=torch.float64, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(dtype)
    model.eval()
    return model


@dataclass(frozen=True)
class Ex:
    """Stands in for adamezo.tasks.Example in tests that need no task."""

    prompt: str
    candidates: tuple[str, ...] = ()
    label: int | None = None
    answers: tuple[str, ...] = ()
    target: str | None = None


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices gain nothing from threads, and on a busy machine OpenMP's spinning threads
    make each tiny matmul take tens of milliseconds; restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
