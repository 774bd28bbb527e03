"""Sentence-pair inference: RTE (two-way), and CB, SNLI, MNLI (three-way, one shared template).

SNLI and MNLI reuse CB's question template rather than LM-BFF's masked-LM cloze
(``{premise} ? [MASK] , {hypothesis}``): a causal LM cannot fill a label word that sits before the
hypothesis, and the question form keeps every candidate a single token after the prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


class RTE(Task):
    name = "rte"
    kind = "classification"
    metric = "accuracy"
    files = split_files("train.jsonl", "validation.jsonl")
    hub = HubSpec(SUPERGLUE, "rte")
    template = '{premise}\\nDoes this mean that "{hypothesis}" is true? Yes or No?\\n{Yes, No}'

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return jsonl_located(path)

    def record_from_hub(self, row: Record) -> Record:
        return {**row, "label": ("entailment", "not_entailment")[row["label"]]}

    def build(self, record: Record) -> Example:
        premise = text_field(record, "premise")
        hypothesis = text_field(record, "hypothesis")
        prompt = f'{premise}\nDoes this mean that "{hypothesis}" is true? Yes or No?\n'
        return Example(prompt, ("Yes", "No"), label_index(record["label"], TWO_WAY))


class ThreeWayNLI(Task):
    """Entailment / contradiction / neutral, asked as "Can we infer …? Yes, No, or Maybe?"."""

    kind = "classification"
    metric = "accuracy"
    template = (
        'Suppose {premise} Can we infer that "{hypothesis}"? Yes, No, or Maybe?\\n{Yes, No, Maybe}'
    )

    def build(self, record: Record) -> Example | None:
        if record["label"] == "-":  # SNLI pairs whose annotators did not agree have no gold label
            return None
        premise = text_field(record, "premise")
        hypothesis = text_field(record, "hypothesis")
        prompt = f'Suppose {premise} Can we infer that "{hypothesis}"? Yes, No, or Maybe?\n'
        return Example(prompt, ("Yes", "No", "Maybe"), label_index(record["label"], THREE_WAY))


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
