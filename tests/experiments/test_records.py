"""The records filter every reader of published cells goes through: a tag and field values."""

import pytest

from adamezo.experiments.records import matching

RECORDS = [
    {"id": "a", "task": "sst2", "seed": 0, "lr": 1e-3, "tags": ["lr"], "finished": True},
    {"id": "b", "task": "trec", "seed": 0, "lr": 1e-3, "tags": ["lr", "main"], "finished": True},
    {"id": "c", "task": "sst2", "seed": 1, "lr": 1e-3, "tags": ["main"], "finished": False},
    {"id": "d", "task": "sst2", "seed": 0, "lr": 1e-3, "finished": True, "preset": "reference"},
]


def _ids(records):
    return [r["id"] for r in records]


def test_matching_keeps_the_order_and_ands_the_tag_with_every_field():
    assert _ids(matching(RECORDS)) == ["a", "b", "c", "d"]
    assert _ids(matching(RECORDS, tag="main")) == ["b", "c"]
    assert _ids(matching(RECORDS, task="sst2", seed=0)) == ["a", "d"]
    assert _ids(matching(RECORDS, tag="lr", task="sst2", seed=0)) == ["a"]
    assert _ids(matching(RECORDS, tag="main", finished=True)) == ["b"]
    assert matching(RECORDS, tag="seeds") == []


def test_matching_counts_a_left_out_optional_field_as_none():
    assert _ids(matching(RECORDS, preset="reference")) == ["d"]
    assert _ids(matching(RECORDS, preset=None)) == ["a", "b", "c"]


def test_matching_refuses_a_field_no_record_has():
    with pytest.raises(TypeError, match="unknown record fields \\['schedule'\\]"):
        matching(RECORDS, schedule="constant")  # the field is lr_schedule
    with pytest.raises(TypeError, match="tags"):
        matching(RECORDS, tags=["lr"])  # tag= takes one tag
