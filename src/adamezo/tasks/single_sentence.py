"""Single-sentence classification: SST-2, SST-5 (sentiment, "It was …") and TREC (question type)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
from adamezo.tasks.readers import header_records, plain_records

SST2_WORDS = ("terrible", "great")
SST5_WORDS = ("terrible", "bad", "okay", "good", "great")


def it_was(sentence: str, words: Sequence[str], label: int) -> Example:
    """The sentiment template: ``{sentence} It was`` followed by `` {word}``."""
    return Example(f"{sentence.strip()} It was", tuple(f" {w}" for w in words), label)


def digit_labels(count: int) -> dict[str, int]:
    """Labels written as the digits "0" … str(count - 1) in the original files."""
    return {str(i): i for i in range(count)}


class SST2(Task):
    name = "sst2"
    kind = "classification"
    metric = "accuracy"
    files = split_files("train.tsv", "validation.tsv")
    hub = HubSpec("nyu-mll/glue", "sst2")
    template = "{sentence} It was {terrible, great}"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        # GLUE tsv: a header, no quoting; sentences may hold bare quote marks.
        return header_records(
            path,
            delimiter="\t",
            quoted=False,
            columns={"sentence": "sentence", "label": "label"},
        )

    def record_from_hub(self, row: Record) -> Record:
        return {"sentence": row["sentence"], "label": str(row["label"])}

    def build(self, record: Record) -> Example:
        label = label_index(record["label"], digit_labels(2))
        return it_was(text_field(record, "sentence"), SST2_WORDS, label)


class SST5(Task):
    name = "sst5"
    kind = "classification"
    metric = "accuracy"
    files = split_files("train.csv", "validation.csv")
    hub = HubSpec("SetFit/sst5", splits={"train": "train", "validation": "test"})
    template = "{sentence} It was {terrible, bad, okay, good, great}"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return plain_records(path, keys=("label", "sentence"))

    def record_from_hub(self, row: Record) -> Record:
        return {"sentence": row["text"], "label": str(row["label"])}

    def build(self, record: Record) -> Example:
        label = label_index(record["label"], digit_labels(5))
        return it_was(text_field(record, "sentence"), SST5_WORDS, label)


# LM-BFF's label words, in LM-BFF's label order (2 is "Abbreviation", verbalised as "Expression").
TREC_WORDS = ("Description", "Entity", "Expression", "Human", "Location", "Number")
# CogComp/trec coarse labels are ABBR, ENTY, DESC, HUM, LOC, NUM; LM-BFF orders them differently.
TREC_HUB_TO_LMBFF = {0: 2, 1: 1, 2: 0, 3: 3, 4: 4, 5: 5}


class TREC(Task):
    name = "trec"
    kind = "classification"
    metric = "accuracy"
    files = split_files("train.csv", "validation.csv")
    hub = HubSpec("CogComp/trec", splits={"train": "train", "validation": "test"})
    template = (
        "{question}\\nAnswer type: {Description, Entity, Expression, Human, Location, Number}"
    )

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return plain_records(path, keys=("label", "question"))

    def record_from_hub(self, row: Record) -> Record:
        return {"question": row["text"], "label": str(TREC_HUB_TO_LMBFF[row["coarse_label"]])}

    def build(self, record: Record) -> Example:
        label = label_index(record["label"], digit_labels(len(TREC_WORDS)))
        question = text_field(record, "question").strip()
        return Example(f"{question}\nAnswer type:", tuple(f" {w}" for w in TREC_WORDS), label)
