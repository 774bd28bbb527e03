"""Data sources: local files (synthetic for tasks missing here), the hub, the missing-data error."""

import json

import pytest
from task_files import (
    RECORD_TEXT,
    drop_document,
    record_passage,
    write_jsonl,
    write_text,
)

from adamezo.tasks import (
    DataNotFoundError,
    HubSource,
    MalformedDataError,
    get_task,
    load_task_data,
    sources,
)
from adamezo.tasks.sources import hub_reachable as REAL_HUB_PROBE  # before the fixture patches it


def fake_hub(rows_by_split, calls=None):
    """A HubSource serving fixed rows, recording each (dataset, config, split) requested."""

    def load(spec, split):
        if calls is not None:
            calls.append((spec.path, spec.config, spec.splits[split]))
        return rows_by_split[split]

    return HubSource(load)


# -- tasks missing from ../shared/data, read from synthetic files in their original formats -------


def test_record_reads_superglue_jsonl_with_entities_as_candidates(tmp_path):
    write_jsonl(tmp_path / "record" / "train.jsonl", [record_passage(i) for i in range(4)])
    write_jsonl(tmp_path / "record" / "validation.jsonl", [record_passage(9)])
    data = load_task_data("record", tmp_path, n_train=2, n_dev=2, n_test=1)
    (example,) = data.test
    passage = RECORD_TEXT.replace("@highlight\n", "- ")
    assert example.prompt == f"{passage}\n-"
    entities = ["Ada Lovelace", "Charles Babbage", "London", "Babbage", "Lovelace"]
    assert example.candidates == tuple(f" {e} wrote the first program" for e in entities)
    assert example.label == 0
    assert example.correct == (0, 4)  # both mentions of the answer entity count
    assert example.answers == ("Ada Lovelace", "Lovelace")
    assert (len(data.train), len(data.dev)) == (2, 2)


def test_record_without_answer_among_entities_is_malformed(tmp_path):
    line = record_passage(0)
    line["qas"][0]["answers"] = [{"start": 0, "end": 2, "text": "Ada"}]
    write_jsonl(tmp_path / "record" / "validation.jsonl", [line])
    with pytest.raises(MalformedDataError, match=r"validation\.jsonl, line 1: .*no answer"):
        get_task("record").read_split("validation", tmp_path)


def test_drop_reads_official_json_with_number_date_and_span_answers(tmp_path):
    write_text(tmp_path / "drop" / "train.json", json.dumps(drop_document(sections=3)))
    write_text(tmp_path / "drop" / "validation.json", json.dumps(drop_document()))
    examples = get_task("drop").read_split("validation", tmp_path)
    assert len(examples) == 2  # the multi-span-only question is left out, as on the hub
    years, date = examples
    assert years.prompt == (
        "Passage: Passage 0: the war lasted 4 years and ended on 5 May 1945.\n"
        "Question: How many years did the war last?\nAnswer:"
    )
    assert years.answers == ("4", "4 years")
    assert years.target == " 4\n"
    assert date.answers == ("5 May 1945",)
    data = load_task_data("drop", tmp_path, n_train=3, n_dev=2, n_test=2)
    assert (len(data.train), len(data.dev), len(data.test)) == (3, 2, 2)


def test_boolq_with_a_train_file_samples_train_from_it(tmp_path):
    def rows(prefix, count):
        return [
            {"question": f"{prefix} question {i}", "passage": "P.", "idx": i, "label": i % 2 == 0}
            for i in range(count)
        ]

    write_jsonl(tmp_path / "boolq" / "train.jsonl", rows("train", 12))
    write_jsonl(tmp_path / "boolq" / "validation.jsonl", rows("validation", 6))
    data = load_task_data("boolq", tmp_path, n_train=8, n_dev=4, n_test=6)
    assert all("Train question" in e.prompt for e in data.train + data.dev)
    assert all("Validation question" in e.prompt for e in data.test)
    assert data.notes == []
    assert data.source == str(tmp_path / "boolq")


# -- the hub, through a monkeypatched loader ----------------------------------------------------

HUB_ROWS = {
    "sst2": ({"sentence": "a fine film ", "label": 1, "idx": 0}, "a fine film It was", 1),
    "rte": ({"premise": "P.", "hypothesis": "H.", "idx": 0, "label": 1}, "P.\nDoes", 1),
    "cb": ({"premise": "P.", "hypothesis": "H", "idx": 0, "label": 2}, "Suppose P. Can", 2),
    "boolq": ({"question": "is it", "passage": "P.", "idx": 0, "label": 1}, "P. Is it?\n", 0),
    "wsc": (
        {
            "text": "Mark told Pete he lied.",
            "span1_index": 0,
            "span1_text": "Mark",
            "span2_index": 3,
            "span2_text": "he",
            "idx": 0,
            "label": 1,
        },
        'Mark told Pete he lied.\nIn the previous sentence, does the pronoun "he" refer to Mark?',
        1,
    ),
    "wic": (
        {"word": "bank", "sentence1": "A.", "sentence2": "B.", "idx": 0, "label": 0},
        'Does the word "bank"',
        0,
    ),
    "multirc": (
        {"paragraph": "P.", "question": "Q?", "answer": "A", "idx": {}, "label": 1},
        'P.\nQuestion: Q?\nI found this answer "A".',
        1,
    ),
    "copa": (
        {"premise": "It rained.", "choice1": "X.", "choice2": "Y.", "question": "effect"}
        | {"idx": 0, "label": 1},
        "It rained so",
        1,
    ),
    "record": (
        {"passage": "Ada met Bob.", "query": "@placeholder smiled", "entities": ["Ada", "Bob"]}
        | {"entity_spans": {}, "answers": ["Bob"], "idx": {}},
        "Ada met Bob.\n-",
        1,
    ),
    "squad": (
        {"id": "x", "title": "T", "context": "C.", "question": "Q?"}
        | {"answers": {"text": ["A", "A b"], "answer_start": [0, 0]}},
        "Title: T\nContext: C.\nQuestion: Q?\nAnswer:",
        None,
    ),
    "drop": (
        {"section_id": "s", "query_id": "q", "passage": "P.", "question": "Q?"}
        | {"answers_spans": {"spans": ["3", "3"], "types": ["number", "number"]}},
        "Passage: P.\nQuestion: Q?\nAnswer:",
        None,
    ),
    "sst5": ({"text": "fine", "label": 4, "label_text": "very positive"}, "fine It was", 4),
    "snli": ({"premise": "P.", "hypothesis": "H", "label": 1}, "Suppose P. Can", 2),
    "mnli": ({"premise": "P.", "hypothesis": "H", "label": 2, "idx": 0}, "Suppose P. Can", 1),
    "trec": ({"text": "What is NASA ?", "coarse_label": 0, "fine_label": 0}, "What is NASA ?", 2),
}


@pytest.mark.parametrize("name", sorted(HUB_ROWS))
def test_hub_row_becomes_the_same_kind_of_example(name):
    row, prompt_start, label = HUB_ROWS[name]
    task = get_task(name)
    (example,) = task.read_split("validation", fake_hub({"validation": [row]}))
    assert example.prompt.startswith(prompt_start)
    assert example.label == label
    if task.kind == "generation":
        assert example.target == f" {example.answers[0]}\n"


def test_hub_rte_row_equals_the_local_record_it_mirrors(tmp_path):
    local = {"premise": "P.", "hypothesis": "H.", "idx": 0, "label": "not_entailment"}
    write_jsonl(tmp_path / "rte" / "validation.jsonl", [local])
    hub_row = HUB_ROWS["rte"][0]
    task = get_task("rte")
    from_hub = task.read_split("validation", fake_hub({"validation": [hub_row]}))
    assert from_hub == task.read_split("validation", tmp_path)


def test_snli_hub_rows_without_gold_label_are_skipped():
    rows = [{"premise": "P.", "hypothesis": "H", "label": -1}, HUB_ROWS["snli"][0]]
    assert len(get_task("snli").read_split("validation", fake_hub({"validation": rows}))) == 1


def test_missing_local_data_falls_back_to_the_hub(tmp_path, monkeypatch):
    calls = []
    row = HUB_ROWS["drop"][0]
    hub = fake_hub({"train": [row] * 8, "validation": [row] * 5}, calls)
    monkeypatch.setattr(sources, "default_hub", lambda: hub)
    data = load_task_data("drop", tmp_path, n_train=4, n_dev=2, n_test=3)
    assert calls == [("ucinlp/drop", None, "train"), ("ucinlp/drop", None, "validation")]
    assert (len(data.train), len(data.dev), len(data.test)) == (4, 2, 3)
    assert data.source == (
        "train: huggingface:ucinlp/drop[train]; validation: huggingface:ucinlp/drop[validation]"
    )


def test_boolq_local_validation_with_hub_train(data_dir, monkeypatch):
    row = HUB_ROWS["boolq"][0]
    monkeypatch.setattr(sources, "default_hub", lambda: fake_hub({"train": [row] * 1600}))
    data = load_task_data("boolq", data_dir)
    assert data.notes == []
    assert data.available == {"train": 1600, "validation": 3270}
    assert data.source.startswith("train: huggingface:aps/super_glue/boolq[train]; validation: ")


def test_mnli_hub_test_split_is_validation_matched(monkeypatch):
    calls = []
    rows = [HUB_ROWS["mnli"][0]] * 3
    hub = fake_hub({"train": rows, "validation": rows}, calls)
    monkeypatch.setattr(sources, "default_hub", lambda: hub)
    load_task_data("mnli", None, n_train=1, n_dev=1, n_test=1)
    assert calls == [
        ("nyu-mll/glue", "mnli", "train"),
        ("nyu-mll/glue", "mnli", "validation_matched"),
    ]


def test_failing_hub_loader_is_reported_as_missing_data(tmp_path, monkeypatch):
    def broken(spec, split):
        raise ConnectionError("name resolution failed")

    monkeypatch.setattr(sources, "default_hub", lambda: HubSource(broken))
    with pytest.raises(DataNotFoundError, match=r"ConnectionError: name resolution failed"):
        load_task_data("record", tmp_path)


def test_malformed_hub_row_is_an_error_naming_the_row(monkeypatch):
    rows = [HUB_ROWS["rte"][0], {"premise": "P.", "idx": 1, "label": 0}]
    monkeypatch.setattr(sources, "default_hub", lambda: fake_hub({"train": rows}))
    pattern = r"huggingface:aps/super_glue/rte\[train\], row 1: .*missing field 'hypothesis'"
    with pytest.raises(MalformedDataError, match=pattern):
        load_task_data("rte", None)


# -- where nothing is found ---------------------------------------------------------------------


def test_missing_data_error_names_paths_tried_and_how_to_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_task_data("drop", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "drop" / "train.json") + " (not found)" in message
    assert str(tmp_path / "drop" / "validation.json") + " (not found)" in message
    assert "huggingface:ucinlp/drop[train] (hub unreachable)" in message
    assert "--data-dir" in message and "ADAMEZO_DATA" in message


def test_missing_data_error_without_data_dir_says_none_was_given():
    with pytest.raises(DataNotFoundError, match="no data directory given"):
        load_task_data("record")


def test_data_dir_defaults_to_environment_variable(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "record" / "validation.jsonl", [record_passage(i) for i in range(3)])
    monkeypatch.setenv("ADAMEZO_DATA", str(tmp_path))
    data = load_task_data("record", n_train=1, n_dev=1, n_test=1)
    assert data.source == str(tmp_path / "record" / "validation.jsonl")


def test_hub_probe_is_false_when_nothing_answers():
    # Port 9 (discard) on the loopback interface: refused at once, no network involved.
    assert REAL_HUB_PROBE.__wrapped__(endpoint="http://127.0.0.1:9", timeout=1.0) is False


def test_default_hub_is_none_when_unreachable_and_used_in_offline_mode(monkeypatch):
    assert sources.default_hub() is None
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    hub = sources.default_hub()
    assert hub is not None and hub.load is sources.load_hub_rows


def test_hub_row_failing_conversion_names_its_row():
    good = HUB_ROWS["wsc"][0]
    bad = {k: v for k, v in good.items() if k != "span1_text"}
    hub = fake_hub({"validation": [good, bad]})
    with pytest.raises(
        MalformedDataError, match=r"wsc\.fixed\[validation\], row 1: .*'span1_text'"
    ):
        get_task("wsc").read_split("validation", hub)


def test_hub_loader_value_error_is_missing_data_not_a_bad_row(tmp_path, monkeypatch):
    def unknown_config(spec, split):
        raise ValueError("BuilderConfig 'record' not found")

    monkeypatch.setattr(sources, "default_hub", lambda: HubSource(unknown_config))
    with pytest.raises(DataNotFoundError, match="ValueError: BuilderConfig 'record' not found"):
        load_task_data("record", tmp_path)
