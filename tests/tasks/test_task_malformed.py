"""Malformed data fails before any training, with an error naming the file and the line."""

import json
import re

import pytest
from task_files import record_passage, write_jsonl, write_text

from adamezo.tasks import MalformedDataError, get_task, load_task_data

RTE_OK = {"premise": "P.", "hypothesis": "H.", "idx": 0, "label": "entailment"}


def error_for(task, split, data_dir):
    with pytest.raises(MalformedDataError) as error:
        get_task(task).read_split(split, data_dir)
    return str(error.value)


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = write_text(
        tmp_path / "rte" / "train.jsonl", json.dumps(RTE_OK) + "\n\n" + '{"premise": \n'
    )
    message = error_for("rte", "train", tmp_path)
    assert message.startswith(f"{path}, line 3: malformed rte data: invalid JSON")


def test_missing_field_names_file_line_and_field(tmp_path):
    bad = {k: v for k, v in RTE_OK.items() if k != "hypothesis"}
    path = write_jsonl(tmp_path / "rte" / "train.jsonl", [RTE_OK, bad])
    message = error_for("rte", "train", tmp_path)
    assert message == f"{path}, line 2: malformed rte record: missing field 'hypothesis'"


def test_unknown_label_lists_the_allowed_values(tmp_path):
    path = write_jsonl(tmp_path / "cb" / "train.jsonl", [{**RTE_OK, "label": "yes"}])
    message = error_for("cb", "train", tmp_path)
    assert message.startswith(f"{path}, line 1: malformed cb record: field 'label' must be one of")
    assert "'entailment', 'contradiction', 'neutral'" in message


def test_boolean_label_where_bool_expected_rejects_integer(tmp_path):
    row = {"question": "q", "passage": "p", "idx": 0, "label": 1}
    write_jsonl(tmp_path / "boolq" / "validation.jsonl", [row])
    assert "line 1" in error_for("boolq", "validation", tmp_path)


def test_empty_text_field_is_malformed(tmp_path):
    write_jsonl(tmp_path / "rte" / "train.jsonl", [{**RTE_OK, "premise": "  "}])
    assert "line 1: malformed rte record: field 'premise' is empty" in error_for(
        "rte", "train", tmp_path
    )


def test_tsv_row_without_label_column_names_its_line(tmp_path):
    path = write_text(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\ngood \t1\nno label\n")
    message = error_for("sst2", "train", tmp_path)
    assert message == (f"{path}, line 3: malformed sst2 data: expected at least 2 columns, got 1")


def test_tsv_header_without_required_column(tmp_path):
    write_text(tmp_path / "snli" / "train.tsv", "index\tsentence1\tgold_label\n0\tA.\tneutral\n")
    message = error_for("snli", "train", tmp_path)
    assert re.search(
        r"line 1: malformed snli data: header lacks column\(s\) \['sentence2'\]", message
    )


def test_csv_row_with_wrong_column_count_names_its_line(tmp_path):
    path = write_text(tmp_path / "sst5" / "train.csv", '1,"fine ."\n2,"ok",extra\n')
    message = error_for("sst5", "train", tmp_path)
    assert message == f"{path}, line 2: malformed sst5 data: expected 2 columns, got 3"


def test_csv_line_numbers_count_quoted_newlines(tmp_path):
    path = write_text(tmp_path / "trec" / "train.csv", '1,"What\nis it ?"\n9,"Why ?"\n')
    message = error_for("trec", "train", tmp_path)
    assert message.startswith(f"{path}, line 3: malformed trec record: field 'label'")


def test_squad_question_without_field_names_its_json_path(tmp_path):
    document = {
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": "C.",
                        "qas": [
                            {"answers": [{"answer_start": 0, "text": "C"}], "question": "Q?"},
                            {"answers": [{"answer_start": 0, "text": "C"}]},
                        ],
                    }
                ],
            }
        ]
    }
    path = write_text(tmp_path / "squad" / "train.json", json.dumps(document))
    message = error_for("squad", "train", tmp_path)
    assert message == (
        f"{path}, data[0].paragraphs[0].qas[1]: malformed squad data: missing field 'question'"
    )


def test_json_document_syntax_error_names_its_line(tmp_path):
    write_text(tmp_path / "squad" / "validation.json", '{"data": [\n{"title": "T",\n]}')
    assert re.search(
        r"validation\.json, line 3, column 1: .*invalid JSON",
        error_for("squad", "validation", tmp_path),
    )


def test_multirc_passage_without_questions_names_its_line(tmp_path):
    line = {"idx": 0, "version": 1.1, "passage": {"text": "P."}}
    write_jsonl(tmp_path / "multirc" / "train.jsonl", [line])
    assert "train.jsonl, line 1: malformed multirc data: missing field 'questions'" in error_for(
        "multirc", "train", tmp_path
    )


def test_record_passage_without_entities_names_its_line(tmp_path):
    good, bad = record_passage(0), record_passage(1)
    del bad["passage"]["entities"]
    write_jsonl(tmp_path / "record" / "train.jsonl", [good, bad])
    assert "line 2: malformed record data: missing field 'entities'" in error_for(
        "record", "train", tmp_path
    )


def test_load_task_data_fails_on_a_bad_test_file_before_returning_anything(tmp_path):
    write_jsonl(tmp_path / "rte" / "train.jsonl", [RTE_OK] * 5)
    write_jsonl(tmp_path / "rte" / "validation.jsonl", [RTE_OK, {**RTE_OK, "label": 3}])
    with pytest.raises(MalformedDataError, match=r"validation\.jsonl, line 2"):
        load_task_data("rte", tmp_path, n_train=2, n_dev=1, n_test=1)
