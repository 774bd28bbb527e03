"""SuperGLUE reading and reasoning tasks: BoolQ, WSC, WiC, MultiRC, COPA and ReCoRD.

Templates follow MeZO's OPT prompts (PromptSource-derived); records are the SuperGLUE JSON-lines
rows, with MultiRC and ReCoRD flattened to one record per answer option / per query as the hub does.
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
    malformed_at,
    split_files,
    text_field,
)
from adamezo.tasks.nli import SUPERGLUE
from adamezo.tasks.readers import jsonl_located, jsonl_records

YES_NO = {True: 0, False: 1}  # candidates ("Yes", "No")
NO_YES = {False: 0, True: 1}  # candidates ("No", "Yes"), MeZO's order for WSC, WiC and MultiRC
FILES = split_files("train.jsonl", "validation.jsonl")
BINARY = {0: 0, 1: 1}  # 0/1 labels that index the candidates directly
CONNECTIVES = {"effect": "so", "cause": "because"}  # COPA's question → connective


class SuperGlueJsonl(Task):
    """A SuperGLUE task whose files hold one record per line and whose hub labels are 0/1 ints."""

    kind = "classification"
    metric = "accuracy"
    files = FILES

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        return jsonl_located(path)

    def record_from_hub(self, row: Record) -> Record:
        return {**row, "label": bool(row["label"])}


class BoolQ(SuperGlueJsonl):
    name = "boolq"
    hub = HubSpec(SUPERGLUE, "boolq")
    prompt_format = "{passage} {question}\n"
    verbalizers = ("Yes", "No")
    note = "question capitalised, '?' added if missing"

    def build(self, record: Record) -> Example:
        question = text_field(record, "question").strip()
        question = question[0].upper() + question[1:]
        if not question.endswith("?"):
            question += "?"
        label = label_index(record["label"], YES_NO)
        return self.classify(label, passage=text_field(record, "passage"), question=question)


def fix_wsc_span(text: str, span: str, word_index: int) -> str:
    """Repair a WSC span that is not a substring of the text, as the hub's ``wsc.fixed`` does.

    The raw files have 96 such spans: a capitalised first word inside a sentence ("The book" for
    "the book"), a trailing period, or a newline for a space.
    """
    if span in text:
        return span
    words = text.split()
    if not 0 <= word_index < len(words):
        raise ValueError(f"span index {word_index} is outside the text's {len(words)} words")
    first = words[word_index]
    span = (span[0].lower() if first[0].islower() else span[0].upper()) + span[1:]
    return span.rstrip(".").replace("\n", " ")


class WSC(SuperGlueJsonl):
    name = "wsc"
    hub = HubSpec(SUPERGLUE, "wsc.fixed")
    prompt_format = (
        '{text}\nIn the previous sentence, does the pronoun "{span2}" refer to {span1}? '
        "Yes or No?\n"
    )
    verbalizers = ("No", "Yes")
    note = "span2 lower-cased; spans repaired as in the hub's wsc.fixed"

    def record_from_hub(self, row: Record) -> Record:
        keys = ("span1_index", "span1_text", "span2_index", "span2_text")
        return {
            "text": row["text"],
            "target": {key: row[key] for key in keys},
            "label": bool(row["label"]),
        }

    def build(self, record: Record) -> Example:
        text = text_field(record, "text")
        target = record["target"]
        span1 = fix_wsc_span(text, text_field(target, "span1_text"), target["span1_index"])
        span2 = fix_wsc_span(text, text_field(target, "span2_text"), target["span2_index"])
        label = label_index(record["label"], NO_YES)
        return self.classify(label, text=text, span1=span1, span2=span2.lower())


class WiC(SuperGlueJsonl):
    name = "wic"
    hub = HubSpec(SUPERGLUE, "wic")
    prompt_format = (
        'Does the word "{word}" have the same meaning in these two sentences? Yes, No?\n'
        "{sentence1}\n{sentence2}\n"
    )
    verbalizers = ("No", "Yes")

    def build(self, record: Record) -> Example:
        fields = {key: text_field(record, key) for key in ("word", "sentence1", "sentence2")}
        return self.classify(label_index(record["label"], NO_YES), **fields)


class MultiRC(SuperGlueJsonl):
    name = "multirc"
    hub = HubSpec(SUPERGLUE, "multirc")
    prompt_format = (
        '{paragraph}\nQuestion: {question}\nI found this answer "{answer}". '
        "Is that correct? Yes or No?\n"
    )
    verbalizers = ("No", "Yes")
    note = "one example per answer option"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        # One line per passage; each answer option of each question becomes one record.
        for number, line in jsonl_records(path):
            location = f"line {number}"
            with malformed_at(location):
                passage = line["passage"]
                records = [
                    {
                        "paragraph": passage["text"],
                        "question": question["question"],
                        "answer": answer["text"],
                        "label": answer["label"],
                    }
                    for question in passage["questions"]
                    for answer in question["answers"]
                ]
            for record in records:
                yield location, record

    def record_from_hub(self, row: Record) -> Record:
        return row

    def build(self, record: Record) -> Example:
        return self.classify(
            label_index(record["label"], BINARY),
            paragraph=text_field(record, "paragraph"),
            question=text_field(record, "question"),
            answer=text_field(record, "answer", allow_empty=True),  # 3 empty options in train
        )


def lower_first_word(sentence: str) -> str:
    """Lower-case a sentence's first word (but not "I") so it can continue another clause."""
    first, _, rest = sentence.strip().partition(" ")
    if first != "I":
        first = first.lower()
    return f"{first} {rest}" if rest else first


class COPA(SuperGlueJsonl):
    name = "copa"
    kind = "multiple_choice"
    hub = HubSpec(SUPERGLUE, "copa")
    n_dev = 100
    prompt_format = "{premise} {connective}"
    continuation_format = " {choice}"
    note = (
        "premise without its final period; connective 'so' for effect, 'because' for cause; "
        "one candidate per choice, its first word lower-cased unless it is 'I'"
    )

    def record_from_hub(self, row: Record) -> Record:
        return row

    def build(self, record: Record) -> Example:
        premise = text_field(record, "premise").rstrip()
        premise = premise.removesuffix(".")
        if record["question"] not in CONNECTIVES:
            raise ValueError(
                f"field 'question' must be 'cause' or 'effect', got {record['question']!r}"
            )
        choices = (text_field(record, "choice1"), text_field(record, "choice2"))
        candidates = tuple(
            self.continuation_format.format(choice=lower_first_word(c)) for c in choices
        )
        label = label_index(record["label"], BINARY)
        prompt = self.prompt_format.format(
            premise=premise, connective=CONNECTIVES[record["question"]]
        )
        return Example(prompt, candidates, label)


class ReCoRD(SuperGlueJsonl):
    name = "record"
    kind = "multiple_choice"
    hub = HubSpec(SUPERGLUE, "record")
    prompt_format = "{passage}\n-"
    continuation_format = " {query}"
    note = (
        "each '@highlight\\n' in the passage written '- '; "
        "one candidate per distinct entity, filling the query's @placeholder"
    )

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        # One line per passage with entity character spans (end inclusive); one record per query.
        for number, line in jsonl_records(path):
            location = f"line {number}"
            with malformed_at(location):
                text = line["passage"]["text"]
                spans = sorted(line["passage"]["entities"], key=lambda e: e["start"])
                entities = list(dict.fromkeys(text[e["start"] : e["end"] + 1] for e in spans))
                records = [
                    {
                        "passage": text,
                        "query": qa["query"],
                        "entities": entities,
                        "answers": list(dict.fromkeys(a["text"] for a in qa.get("answers", []))),
                    }
                    for qa in line["qas"]
                ]
            for record in records:
                yield location, record

    def record_from_hub(self, row: Record) -> Record:
        keys = ("passage", "query", "entities", "answers")
        return {key: list(row[key]) if key in ("entities", "answers") else row[key] for key in keys}

    def build(self, record: Record) -> Example:
        passage = text_field(record, "passage").replace("@highlight\n", "- ")
        query = text_field(record, "query")
        if "@placeholder" not in query:
            raise ValueError("field 'query' has no @placeholder")
        entities = list(dict.fromkeys(record["entities"]))
        answers = tuple(dict.fromkeys(record["answers"]))
        correct = tuple(i for i, entity in enumerate(entities) if entity in answers)
        if not correct:
            raise ValueError(f"no answer {list(answers)} is among the entities")
        candidates = tuple(
            self.continuation_format.format(query=query.replace("@placeholder", entity))
            for entity in entities
        )
        prompt = self.prompt_format.format(passage=passage)
        return Example(prompt, candidates, label=correct[0], answers=answers, correct=correct)
