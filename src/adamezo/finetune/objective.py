"""What a task asks of the model: the training loss of a batch, and dev/test evaluation.

:func:`build_objective` puts a task's objective on a tuned model; :func:`load_data` loads the
task's sampled splits (both used by training and by ``adamezo eval``).

Classification trains on cross-entropy over the candidates' mean token log-probabilities;
multiple choice and generation train on the gold continuation's tokens (LM loss). Evaluation
ranks candidates by mean log-probability (classification, multiple choice) or decodes greedily
(generation, stop at a newline, at most 50 new tokens), and reports the dev loss that early
stopping watches next to the task's metric.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from adamezo.finetune.config import FinetuneConfig
    from adamezo.finetune.tuning import TunedModel
from adamezo.finetune.encoding import EncodedExample, ExampleLike, TokenEncoder
from adamezo.finetune.models import max_positions
from adamezo.finetune.scoring import (
    CausalLMRunner,
    candidate_scores,
    classification_losses,
    greedy_decode,
    lm_losses,
)

KINDS = ("classification", "multiple_choice", "generation")

MetricFn = Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]


@dataclass
class EvalResult:
    """Dev or test numbers: ``loss`` (the training loss on these examples), the task's metrics,
    and the model forward calls evaluation spent."""

    loss: float
    metrics: dict[str, float]
    forward_calls: int
    predictions: list[Any] = field(default_factory=list, repr=False)

    def as_dict(self, prefix: str) -> dict[str, float]:
        out = {f"{prefix}_loss": self.loss}
        out.update({f"{prefix}_{k}": v for k, v in self.metrics.items()})
        out[f"{prefix}_forward_calls"] = self.forward_calls
        return out


def _in_eval_mode(method):
    """Run an evaluation method with dropout off, whatever mode training left the model in."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.runner.eval_mode():
            return method(self, *args, **kwargs)

    return wrapper


class TaskObjective:
    """Losses and evaluation of one task kind on one model; caches the token ids of examples."""

    def __init__(
        self, runner: CausalLMRunner, encoder: TokenEncoder, kind: str, metric_fn: MetricFn
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        self.runner = runner
        self.encoder = encoder
        self.kind = kind
        self.metric_fn = metric_fn
        self._cache: dict[tuple[int, str], Any] = {}

    def _encoded(self, example: ExampleLike, purpose: str, *args: Any) -> Any:
        key = (id(example), purpose, *args)
        if key not in self._cache:
            encode = {
                "score": self.encoder.for_scoring,
                "lm": self.encoder.for_lm_loss,
                "generate": self.encoder.for_generation,
            }[purpose]
            # Keep the example alive, so that its id stays unique.
            self._cache[key] = (example, encode(example, *args))
        return self._cache[key][1]

    def loss(self, examples: Sequence[ExampleLike]) -> torch.Tensor:
        """The training loss of a batch (a differentiable scalar when grad is enabled)."""
        if self.kind == "classification":
            batch = [self._encoded(ex, "score") for ex in examples]
            scores = candidate_scores(self.runner, batch)
            return classification_losses(scores, _labels(batch)).mean()
        return lm_losses(self.runner, [self._encoded(ex, "lm") for ex in examples]).mean()

    def scores(self, examples: Sequence[ExampleLike]) -> list[torch.Tensor]:
        """Each example's candidates' mean token log-probabilities (one 1-D tensor each)."""
        return candidate_scores(self.runner, [self._encoded(ex, "score") for ex in examples])

    @torch.no_grad()
    @_in_eval_mode
    def evaluate(
        self,
        examples: Sequence[ExampleLike],
        batch_size: int,
        *,
        with_metric: bool = True,
        max_new_tokens: int = 50,
        progress: bool = False,
        label: str = "eval",
    ) -> EvalResult:
        """Loss and metric over ``examples``, in batches of similar length (less padding).

        ``with_metric=False`` skips greedy decoding for generation tasks (its loss needs none).
        """
        calls_before = self.runner.forward_calls
        losses = torch.zeros(len(examples), dtype=torch.float64)
        predictions: list[Any] = [None] * len(examples)
        for chunk in _length_batches(examples, batch_size, progress, label):
            batch = [examples[i] for i in chunk]
            if self.kind == "generation":
                lm = [self._encoded(ex, "lm") for ex in batch]
                losses[chunk] = lm_losses(self.runner, lm).double()
                continue
            encoded = [self._encoded(ex, "score") for ex in batch]
            scores = candidate_scores(self.runner, encoded)
            for i, s in zip(chunk, scores, strict=True):
                predictions[i] = int(s.argmax())
            if self.kind == "classification":
                losses[chunk] = classification_losses(scores, _labels(encoded)).double()
            else:  # multiple choice trains on the gold continuation: its NLL is minus its score
                losses[chunk] = -torch.stack(
                    [s[ex.label] for s, ex in zip(scores, encoded, strict=True)]
                ).double()
        metrics: dict[str, float] = {}
        if self.kind == "generation" and with_metric:
            predictions = self.generate(
                examples, batch_size, max_new_tokens, progress=progress, label=f"{label} (decode)"
            )
        if with_metric or self.kind != "generation":
            metrics = self.metric_fn(examples, predictions)
        return EvalResult(
            loss=float(losses.mean()),
            metrics=metrics,
            forward_calls=self.runner.forward_calls - calls_before,
            predictions=predictions,
        )

    @_in_eval_mode
    def generate(
        self,
        examples: Sequence[ExampleLike],
        batch_size: int,
        max_new_tokens: int = 50,
        *,
        progress: bool = False,
        label: str = "generate",
        pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> list[str]:
        """Greedy answers (or those ``pick`` chooses: see :func:`greedy_decode`), cut at the
        first newline and stripped."""
        stop = self.encoder.newline_ids() | _eos_ids(self.encoder.tokenizer)
        if self.encoder.max_length is not None:  # prompt and answer must fit in max_length
            max_new_tokens = max(1, min(max_new_tokens, self.encoder.max_length - 1))
        answers: list[str] = [""] * len(examples)
        for chunk in _length_batches(examples, batch_size, progress, label):
            prompts = [self._encoded(examples[i], "generate", max_new_tokens) for i in chunk]
            outputs = greedy_decode(self.runner, prompts, stop, max_new_tokens, pick)
            for i, ids in zip(chunk, outputs, strict=True):
                answers[i] = self.encoder.decode(ids).split("\n")[0].strip()
        return answers


def _length_batches(
    examples: Sequence[ExampleLike], batch_size: int, progress: bool, label: str
) -> Iterator[list[int]]:
    """Index batches of examples sorted by prompt length, so each batch pads little."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(
            starts, desc=label, unit="batch", leave=False, dynamic_ncols=True, disable=None
        )  # disable=None: no bar when stderr is not a terminal (a log file)
    for start in starts:
        yield order[start : start + batch_size]


def _labels(batch: Sequence[EncodedExample]) -> list[int]:
    labels = [ex.label for ex in batch]
    if any(label is None for label in labels):
        raise ValueError("classification training needs a label on every example")
    return labels  # type: ignore[return-value]


def _eos_ids(tokenizer: Any) -> frozenset[int]:
    eos = tokenizer.eos_token_id
    if eos is None:
        return frozenset()
    return frozenset(eos if isinstance(eos, list) else [eos])


def load_data(config: FinetuneConfig):
    """The task and its sampled splits (raises for an unknown task, missing or malformed data)."""
    from adamezo.finetune.own_data import load_own_config_data
    from adamezo.tasks import get_task, load_task_data

    if config.train_file is not None:
        return load_own_config_data(config)
    task = get_task(config.task)
    data = load_task_data(
        task,
        config.data_dir,
        seed=config.seed,
        n_train=config.n_train,
        n_dev=config.n_dev,
        n_test=config.n_test,
    )
    return task, data


def metric_function(task: Any) -> Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]:
    from adamezo.tasks import score_predictions

    return lambda examples, predictions: score_predictions(task, examples, predictions)


def build_objective(
    tuned: TunedModel,
    tokenizer: Any,
    task: Any,
    max_length: int | None,
    autocast: torch.dtype | None = None,
) -> TaskObjective:
    """The task's objective on ``tuned``; ``max_length=None`` means as many tokens as the model
    has positions (less the prefix's), so long prompts lose their start instead of crashing.
    ``autocast``: the dtype the forward passes run in under ``torch.autocast`` (mixed precision;
    None: the weights' own)."""
    pad_id = tokenizer.pad_token_id or 0
    runner = CausalLMRunner(tuned.forward_model, tuned.prefix, pad_id=pad_id, autocast=autocast)
    if max_length is None:
        limit = max_positions(tuned.forward_model, tokenizer)
        max_length = None if limit is None else limit - runner.prefix_length
    return TaskObjective(
        runner, TokenEncoder(tokenizer, max_length), task.kind, metric_function(task)
    )
