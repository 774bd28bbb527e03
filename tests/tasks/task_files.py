"""Writers for small synthetic data files in the original public formats."""

import json
from pathlib import Path


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def entity(text: str, name: str, occurrence: int = 0) -> dict:
    """A ReCoRD character span (end inclusive) of the given occurrence of ``name`` in ``text``."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(name, start + 1)
    return {"start": start, "end": start + len(name) - 1}


RECORD_TEXT = (
    "Ada Lovelace met Charles Babbage in London.\n@highlight\nBabbage built engines"
    "\n@highlight\nLovelace wrote notes"
)


def record_passage(idx: int, query: str = "@placeholder wrote the first program") -> dict:
    """One SuperGLUE ReCoRD line: a passage with entity spans and one query."""
    text = RECORD_TEXT
    names = ["Ada Lovelace", "Charles Babbage", "London", "Babbage", "Lovelace"]
    entities = [entity(text, "Ada Lovelace"), entity(text, "Charles Babbage")]
    entities += [entity(text, "London"), entity(text, "Babbage", 1), entity(text, "Lovelace", 1)]
    assert [text[e["start"] : e["end"] + 1] for e in entities] == names
    answers = [
        {**entity(text, "Ada Lovelace"), "text": "Ada Lovelace"},
        {**entity(text, "Lovelace", 1), "text": "Lovelace"},
    ]
    return {
        "source": "Daily mail",
        "passage": {"text": text, "entities": entities},
        "qas": [{"query": query, "answers": answers, "idx": idx}],
        "idx": idx,
    }


def drop_answer(number="", spans=(), day="", month="", year="") -> dict:
    return {
        "number": number,
        "date": {"day": day, "month": month, "year": year},
        "spans": list(spans),
    }


def drop_document(sections: int = 1) -> dict:
    """The official DROP layout with number, date, single-span and multi-span answers."""
    document = {}
    for s in range(sections):
        document[f"history_{s}"] = {
            "passage": f"Passage {s}: the war lasted 4 years and ended on 5 May 1945.",
            "qa_pairs": [
                {
                    "question": "How many years did the war last? ",
                    "answer": drop_answer(number="4"),
                    "validated_answers": [drop_answer(number="4"), drop_answer(spans=["4 years"])],
                    "query_id": f"q{s}-0",
                },
                {
                    "question": "When did the war end?",
                    "answer": drop_answer(day="5", month="May", year="1945"),
                    "query_id": f"q{s}-1",
                },
                {
                    "question": "Which two things?",
                    "answer": drop_answer(spans=["war", "years"]),
                    "query_id": f"q{s}-2",
                },
            ],
            "wiki_url": "https://example.org",
        }
    return document
