"""Test helpers: a tiny random Llama, a byte-level BPE tokenizer trained offline in milliseconds,
synthetic sentiment data, a quick run configuration, a run stopped as a crash would stop it, and
a run under torchrun."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune
from adamezo.finetune.records import TIMING_KEYS
from adamezo.tasks import Example, TaskData

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


def tiny_llama(tokenizer, *, layers: int = 2, dtype=torch.float64, seed: int = 0, **overrides):
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
        **overrides,
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


WORDS = ["great", "wonderful", "moving", "dull", "lifeless", "terrible", "film", "plot", "story"]


def sentiment_data(n_train=24, n_dev=8, n_test=8, seed=0):
    rng = random.Random(seed)

    def example():
        words = rng.sample(WORDS, 4)
        label = int(sum(w in WORDS[:3] for w in words) >= sum(w in WORDS[3:6] for w in words))
        return Example(f"the {' '.join(words)}. It was", (" terrible", " great"), label)

    return TaskData(
        [example() for _ in range(n_train)],
        [example() for _ in range(n_dev)],
        [example() for _ in range(n_test)],
        [],
        "synthetic",
    )


def config(tmp_path, **overrides):
    settings = dict(
        model="tiny/llama",
        task="sst2",
        optimizer="adamezo",
        tuning="full",
        lr=1e-3,
        steps=4,
        batch_size=4,
        eval_every=2,
        patience=6,
        output_dir=str(tmp_path / "run"),
        progress=False,
        device="cpu",
    )
    settings.update(overrides)
    return FinetuneConfig(**settings)


def train(cfg, tokenizer, data=None, **kwargs):
    model = tiny_llama(tokenizer, dtype=torch.float32)
    return run_finetune(
        cfg, model=model, tokenizer=tokenizer, data=data or sentiment_data(), **kwargs
    )


def weights(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def sentiment_sentences(n, seed=0):
    """(sentence, label) pairs in the style of SST-2: label 1 when positive words dominate."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.sample(WORDS, 4)
        rows.append((f"the {' '.join(words)}", int(sum(w in WORDS[:3] for w in words) >= 2)))
    return rows


def write_sst2(root, n_train=40, n_validation=None):
    """SST-2's tsv files under ``root``/sst2 (no validation.tsv when ``n_validation`` is None)."""
    from tests.tasks.task_files import write_text

    splits = {"train": n_train, "validation": n_validation}
    for seed, (split, n) in enumerate(splits.items()):
        if n is not None:
            lines = [f"{s} \t{label}\n" for s, label in sentiment_sentences(n, seed)]
            write_text(root / "sst2" / f"{split}.tsv", "sentence\tlabel\n" + "".join(lines))
    return root


REPO = Path(__file__).resolve().parents[2]


def python_worker(code: str, args, prelude: str = "") -> subprocess.Popen:
    """A Python process that runs ``prelude`` then ``code`` with ``args`` as ``sys.argv[1:]``,
    this checkout's sources first on its path, one thread; stdout and stderr together, as text."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", f"import sys\n{prelude}\n{code}", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


KILL_AT_STEP_3 = """
import os, signal
from adamezo.finetune import loop
train = loop.run_finetune
def run_finetune(config, **kwargs):
    def kill(record):  # called after the step's checkpoint: the one of step 2 is on disk
        if record.get("type") == "train" and record["step"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return train(config, callbacks=[kill])
loop.run_finetune = run_finetune
"""
"""A prelude for :func:`python_worker`: the process kills itself (SIGKILL, no clean-up) after
its run's step 3, whose preceding checkpoint (step 2, with ``checkpoint_every`` 2) is on disk."""


def rendezvous(directory: Path, parties: int = 2) -> str:
    """A prelude for :func:`python_worker`: each process's first run waits, before training,
    until ``parties`` processes have reached theirs (marker files in ``directory``), so that
    workers started together overlap however loaded the machine is and however long one takes
    to import."""
    return f"""
import os, time
from pathlib import Path
from adamezo.finetune import loop
train = loop.run_finetune
def run_finetune(config, **kwargs):
    here = Path({str(directory)!r})
    here.mkdir(parents=True, exist_ok=True)
    (here / str(os.getpid())).touch()
    deadline = time.monotonic() + 300
    while len(list(here.iterdir())) < {parties} and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.run_finetune = train
    return train(config, **kwargs)
loop.run_finetune = run_finetune
"""


class Interrupt(Exception):
    """What a callback raises to stop a run the way a crash would."""


def stop_at_step(step: int) -> Callable[[dict[str, Any]], None]:
    """A run callback that raises Interrupt when step ``step`` has been trained."""

    def stop(record: dict[str, Any]) -> None:
        if record["type"] == "train" and record["step"] == step:
            raise Interrupt

    return stop


def whole_and_resumed(tmp_path: Path, tokenizer, stop: int, **settings):
    """(an uninterrupted run into ``tmp_path``/a, the same run into ``tmp_path``/b stopped once
    step ``stop`` is trained and then resumed from its last checkpoint)."""
    whole = train(config(tmp_path / "a", **settings), tokenizer)
    cfg = config(tmp_path / "b", **settings)
    with pytest.raises(Interrupt):
        train(cfg, tokenizer, callbacks=[stop_at_step(stop)])
    return whole, train(config(tmp_path / "b", resume=True, **settings), tokenizer)


def untimed_log(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's log.jsonl without their timings (which differ from run to run)."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def run_alone_and_on_two_processes(args: list[str], out: Path) -> subprocess.CompletedProcess:
    """``adamezo <args>`` in this process into ``out``/one, then under torchrun with two
    processes into ``out``/two; both must succeed. The torchrun run, for its output."""
    from adamezo.cli import main

    assert main([*args, "--output-dir", str(out / "one")]) == 0
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    run = subprocess.run(
        [*launcher, "-m", "adamezo", *args, "--output-dir", str(out / "two")],
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def trained_alike(out: Path, initial: Path) -> tuple[dict, dict, dict]:
    """(one, two, initial) weights of the two runs of :func:`run_alone_and_on_two_processes`,
    after checking that both agree to float64 rounding of the shard means (measured 2e-16
    apart) while the weights moved from ``initial`` by more than 1e-4."""
    from safetensors.torch import load_file

    one = load_file(out / "one" / "checkpoint" / "trainable.safetensors")
    two = load_file(out / "two" / "checkpoint" / "trainable.safetensors")
    start = load_file(initial)
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=0, atol=1e-11)
    assert max(float((two[k] - start[k].double()).abs().max()) for k in start) > 1e-4
    return one, two, start
