"""Task metrics: accuracy over candidates, and SQuAD v1.1 token F1 / exact match for generation.

Generation scores follow the official SQuAD v1.1 evaluation script: both strings are normalised
(lower-cased, punctuation removed, articles "a/an/the" removed, whitespace collapsed), F1 is the
harmonic mean of token precision and recall over the multiset of shared tokens, and each prediction
takes the maximum over its reference answers. Scores are fractions in [0, 1].
"""

from __future__ import annotations

import numbers
import re
import string
from collections import Counter
from collections.abc import Sequence

from adamezo.tasks.base import Example, Task
from adamezo.tasks.registry import get_task

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """Token-level F1 between two answers after normalisation (0 when nothing is shared)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(predicted)
    recall = shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the normalised answers are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def best_over_references(metric, prediction: str, references: Sequence[str]) -> float:
    """The best score of ``prediction`` against any reference answer."""
    if not references:
        raise ValueError("references must hold at least one answer")
    return max(metric(prediction, reference) for reference in references)


def score_predictions(
    task: str | Task, examples: Sequence[Example], predictions: Sequence[int] | Sequence[str]
) -> dict[str, float]:
    """The task's metrics over ``examples``, as fractions in [0, 1].

    Classification and multiple choice take predicted candidate indices and return
    ``{"accuracy"}`` (an index is right if ``example.is_correct(index)``); generation takes
    generated strings and returns ``{"f1", "exact_match"}``, each the mean over examples of the
    best score against the example's reference answers.
    """
    task = get_task(task)
    if len(examples) != len(predictions):
        raise ValueError(
            f"predictions must have one entry per example: {len(predictions)} predictions for "
            f"{len(examples)} examples"
        )
    if not examples:
        raise ValueError("examples must not be empty")
    pairs = list(zip(examples, predictions, strict=True))
    if task.kind == "generation":
        if not all(isinstance(p, str) for p in predictions):
            raise TypeError("predictions for a generation task must be strings")
        f1 = sum(best_over_references(token_f1, p, e.answers) for e, p in pairs)
        em = sum(best_over_references(exact_match, p, e.answers) for e, p in pairs)
        return {"f1": f1 / len(pairs), "exact_match": em / len(pairs)}
    if not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in predictions):
        raise TypeError(f"predictions for a {task.kind} task must be candidate indices (int)")
    for example, prediction in pairs:
        if not 0 <= prediction < len(example.candidates):
            raise ValueError(
                f"prediction {prediction} is outside [0, {len(example.candidates) - 1}]"
            )
    correct = sum(e.is_correct(int(p)) for e, p in pairs)
    return {"accuracy": correct / len(examples)}
