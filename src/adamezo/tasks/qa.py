"""Extractive and discrete-reasoning question answering, scored by generation: SQuAD and DROP.

Both train on the gold continuation `` {first answer}\\n`` and are evaluated by greedy decoding
against every reference answer (``Example.answers``) with SQuAD-normalised F1 and exact match.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adamezo.tasks.base import (
    Example,
    HubSpec,
    Located,
    MalformedRecord,
    Record,
    Split,
    Task,
    malformed_at,
    split_files,
    text_field,
)
from adamezo.tasks.readers import json_document

FILES = split_files("train.json", "validation.json")


class Generation(Task):
    """A question-answering task that trains on `` {first answer}\\n`` and scores every answer."""

    kind = "generation"
    metric = "f1"
    files = FILES
    continuation_format = " {answer}\n"

    def generate(self, answers: Sequence[Any], **fields: str) -> Example:
        answers = tuple(answers)
        if not answers:
            raise ValueError("record has no answer")
        if not all(isinstance(a, str) and a.strip() for a in answers):
            raise ValueError(f"answers must be non-empty strings, got {list(answers)!r}")
        target = self.continuation_format.format(answer=answers[0])
        return Example(self.prompt_format.format(**fields), (), answers=answers, target=target)


class SQuAD(Generation):
    name = "squad"
    hub = HubSpec("rajpurkar/squad")
    prompt_format = "Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:"
    note = "question stripped; trains on the first answer, scored against all"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        # The official v1.1 layout: data[] → paragraphs[] → qas[], one row per question.
        document = json_document(path)
        with malformed_at("top level"):
            articles = document["data"]
        for a, article in enumerate(articles):
            with malformed_at(f"data[{a}]"):
                title, paragraphs = article["title"], article["paragraphs"]
            for p, paragraph in enumerate(paragraphs):
                with malformed_at(f"data[{a}].paragraphs[{p}]"):
                    context, questions = paragraph["context"], paragraph["qas"]
                for q, qa in enumerate(questions):
                    location = f"data[{a}].paragraphs[{p}].qas[{q}]"
                    with malformed_at(location):
                        record = {
                            "title": title,
                            "context": context,
                            "question": qa["question"],
                            "answers": [answer["text"] for answer in qa["answers"]],
                        }
                    yield location, record

    def record_from_hub(self, row: Record) -> Record:
        return {**row, "answers": list(row["answers"]["text"])}

    def build(self, record: Record) -> Example:
        return self.generate(
            record["answers"],
            title=text_field(record, "title"),
            context=text_field(record, "context"),
            question=text_field(record, "question").strip(),
        )


def drop_answer_text(answer: dict[str, Any]) -> str | None:
    """One DROP answer as text: a number, a date ("day month year"), or a single span.

    Multi-span answers give None: like the hub's DROP loader (and so MeZO), they are left out,
    since a single generated string cannot be scored against a set of spans.
    """
    number = answer.get("number", "")
    if number != "":
        return str(number)
    date = answer.get("date") or {}
    parts = [str(date.get(key, "")).strip() for key in ("day", "month", "year")]
    if any(parts):
        return " ".join(p for p in parts if p)
    spans = answer.get("spans") or []
    return spans[0] if len(spans) == 1 else None


class DROP(Generation):
    name = "drop"
    hub = HubSpec("ucinlp/drop")
    prompt_format = "Passage: {passage}\nQuestion: {question}\nAnswer:"
    note = "question stripped; answers: the answer and validated answers, multi-span ones left out"

    def records_from_file(self, path: Path, split: Split) -> Iterator[Located]:
        # The official layout: {section_id: {"passage", "qa_pairs": [{"question", "answer",
        # "validated_answers"}]}}; the answer and the validated answers are all references.
        document = json_document(path)
        if not isinstance(document, dict):
            raise MalformedRecord("top level", "expected a JSON object of sections")
        for section_id, section in document.items():
            with malformed_at(f"section {section_id!r}"):
                passage, pairs = section["passage"], section["qa_pairs"]
            for j, qa in enumerate(pairs):
                location = f"section {section_id!r}, qa_pairs[{j}]"
                with malformed_at(location):
                    texts = [
                        drop_answer_text(answer)
                        for answer in [qa["answer"], *qa.get("validated_answers", [])]
                    ]
                    record = {
                        "passage": passage,
                        "question": qa["question"],
                        "answers": list(dict.fromkeys(t for t in texts if t is not None)),
                    }
                yield location, record

    def record_from_hub(self, row: Record) -> Record:
        return {
            "passage": row["passage"],
            "question": row["question"],
            "answers": list(dict.fromkeys(row["answers_spans"]["spans"])),
        }

    def build(self, record: Record) -> Example | None:
        if not record["answers"]:  # only multi-span answers: skipped, as on the hub
            return None
        return self.generate(
            record["answers"],
            passage=text_field(record, "passage"),
            question=text_field(record, "question").strip(),
        )
