"""Single-sentence classification: SST-2, SST-5 (sentiment, "It was …") and TREC (question type)."""

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
from adamezo.tasks.readers import header_records, plain_records


def digit_labels(count: int) -> dict[str, int]:
    """Labels written as the digits "0" … str(count - 1) in the original files."""
    return {str(i): i for i in range(count)}


class Sentiment(Task):
    """The LM-BFF/MeZO sentiment template: ``{sentence} It was`` followed by a label word."""

    kind = "classification"
    metric = "accuracy"
    prompt_format = "{sentence} It was"
    note = "sentence stripped"

    def sentiment(self, sentence: str, label: int) -> Example:
        return self.classify(label, sentence=sentence.strip())


class SST2(Sentiment):
    name = "sst2"
    files = split_files("train.tsv", "validation.tsv")
    hub = HubSpec("nyu-mll/glue", "sst2")
    verbalizers = (" terrible", " great")

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
        return self.sentiment(text_field(record, "sentence"), label)


class SST5(Sentiment):
    name = "sst5"
    files = split_files("train.csv", "validation.csv")
    hub = HubSpec("SetFit/sst5", splits={"train": "train", "validation": "test"})
    verbalizers = (" terrible", " bad", " okay", " good", " great")

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return plain_records(path, keys=("label", "sentence"))

    def record_from_hub(self, row: Record) -> Record:
        return {"sentence": row["text"], "label": str(row["label"])}

    def build(self, record: Record) -> Example:
        label = label_index(record["label"], digit_labels(5))
        return self.sentiment(text_field(record, "sentence"), label)


# CogComp/trec coarse labels are ABBR, ENTY, DESC, HUM, LOC, NUM; LM-BFF orders them differently.
TREC_HUB_TO_LMBFF = {0: 2, 1: 1, 2: 0, 3: 3, 4: 4, 5: 5}


class TREC(Task):
    name = "trec"
    kind = "classification"
    metric = "accuracy"
    files = split_files("train.csv", "validation.csv")
    hub = HubSpec("CogComp/trec", splits={"train": "train", "validation": "test"})
    prompt_format = "{question}\nAnswer type:"
    # LM-BFF's label words in LM-BFF's label order (2 is abbreviation, verbalised "Expression").
    verbalizers = (" Description", " Entity", " Expression", " Human", " Location", " Number")
    note = "question stripped"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return plain_records(path, keys=("label", "question"))

    def record_from_hub(self, row: Record) -> Record:
        return {"question": row["text"], "label": str(TREC_HUB_TO_LMBFF[row["coarse_label"]])}

    def build(self, record: Record) -> Example:
        label = label_index(record["label"], digit_labels(len(self.verbalizers)))
        return self.classify(label, question=text_field(record, "question").strip())
