"""Sentence-pair inference: RTE (two-way), and CB, SNLI, MNLI (three-way, one shared template).

SNLI and MNLI reuse CB's question template rather than LM-BFF's masked-LM cloze
(``{premise} ? [MASK] , {hypothesis}``): a causal LM cannot fill a label word that sits before the
hypothesis, and the question form keeps every candidate a single token after the prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from adamezo.tasks.base import (
    Example,
    HubSpec,
    Located,
    Record,
    Split,
    Task,
    label_index,
    split_files,
    text_field,
)
from adamezo.tasks.readers import header_records, jsonl_located

SUPERGLUE = "aps/super_glue"
THREE_WAY = {"entailment": 0, "contradiction": 1, "neutral": 2}  # → Yes, No, Maybe
TWO_WAY = {"entailment": 0, "not_entailment": 1}  # → Yes, No


class SentencePair(Task):
    """A premise/hypothesis task whose label names map to candidate indices through ``labels``."""

    kind = "classification"
    metric = "accuracy"
    labels: ClassVar[Mapping[str, int]]

    def build(self, record: Record) -> Example | None:
        if record["label"] == "-":  # SNLI pairs whose annotators did not agree have no gold label
            return None
        return self.classify(
            label_index(record["label"], self.labels),
            premise=text_field(record, "premise"),
            hypothesis=text_field(record, "hypothesis"),
        )


class RTE(SentencePair):
    name = "rte"
    files = split_files("train.jsonl", "validation.jsonl")
    hub = HubSpec(SUPERGLUE, "rte")
    prompt_format = '{premise}\nDoes this mean that "{hypothesis}" is true? Yes or No?\n'
    verbalizers = ("Yes", "No")
    labels = TWO_WAY

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return jsonl_located(path)

    def record_from_hub(self, row: Record) -> Record:
        return {**row, "label": ("entailment", "not_entailment")[row["label"]]}


class ThreeWayNLI(SentencePair):
    """Entailment / contradiction / neutral, asked as "Can we infer …? Yes, No, or Maybe?"."""

    prompt_format = 'Suppose {premise} Can we infer that "{hypothesis}"? Yes, No, or Maybe?\n'
    verbalizers = ("Yes", "No", "Maybe")
    labels = THREE_WAY


class CB(ThreeWayNLI):
    name = "cb"
    files = split_files("train.jsonl", "validation.jsonl")
    hub = HubSpec(SUPERGLUE, "cb")
    n_dev = 100

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return jsonl_located(path)

    def record_from_hub(self, row: Record) -> Record:
        return {**row, "label": ("entailment", "contradiction", "neutral")[row["label"]]}


class GlueNLI(ThreeWayNLI):
    """SNLI and MNLI in GLUE/LM-BFF tsv files; the hub datasets order labels ent, neutral, contr."""

    files = split_files("train.tsv", "validation.tsv")

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return header_records(
            path,
            delimiter="\t",
            quoted=False,
            columns={"premise": "sentence1", "hypothesis": "sentence2"},
            last_column="label",
        )

    def record_from_hub(self, row: Record) -> Record:
        names = ("entailment", "neutral", "contradiction")
        label = names[row["label"]] if row["label"] >= 0 else "-"
        return {"premise": row["premise"], "hypothesis": row["hypothesis"], "label": label}


class SNLI(GlueNLI):
    name = "snli"
    hub = HubSpec("stanfordnlp/snli")


class MNLI(GlueNLI):
    name = "mnli"
    hub = HubSpec("nyu-mll/glue", "mnli", {"train": "train", "validation": "validation_matched"})
