"""The ``adamezo tasks`` command lists every task and where its data would come from."""

from pathlib import Path

import pytest

from adamezo.cli import main
from adamezo.tasks import get_task, list_tasks


def blocks(capsys, *argv):
    """The header line and, per task, its heading and {split: status}."""
    assert main(["tasks", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows, name, split = {}, None, None
    for line in lines[1:]:
        if line.startswith("    "):  # a status too long for its split's line
            rows[name][split] += " " + line.strip()
        elif line.startswith("  "):
            split, _, status = line.strip().partition(" ")
            rows[name][split] = status.strip()
        elif "(" in line and line.split()[0] in list_tasks():
            name = line.split()[0]
            rows[name] = {"heading": line}
    return lines[0], rows


def test_tasks_lists_local_files_relative_to_the_data_dir(capsys, data_dir):
    header, rows = blocks(capsys, "--data-dir", str(data_dir))
    assert header == f"data directory: {data_dir} (from --data-dir)"
    assert rows["sst2"] == {
        "heading": "sst2 (classification, accuracy)",
        "train": "sst2/train.tsv",
        "validation": "sst2/validation.tsv",
    }
    assert rows["squad"]["heading"] == "squad (generation, f1)"
    assert len(rows) == 16


def test_tasks_says_which_splits_would_need_the_hub(capsys, data_dir):
    _, rows = blocks(capsys, "--data-dir", str(data_dir))
    assert rows["boolq"]["train"] == "not local; needs huggingface:aps/super_glue/boolq[train]"
    assert rows["boolq"]["validation"] == "boolq/validation.jsonl"
    assert rows["drop"]["validation"] == "not local; needs huggingface:ucinlp/drop[validation]"


def test_tasks_without_data_dir_points_to_the_option(capsys):
    header, rows = blocks(capsys)
    assert header == "data directory: none (pass --data-dir or set ADAMEZO_DATA)"
    assert rows["rte"]["train"].startswith("not local;")
    assert rows["rotten_tomatoes"]["train"].endswith("rotten_tomatoes_corpus_full.csv.bz2")
    assert rows["rotten_tomatoes"]["validation"] == "(same file, fixed split)"


def test_tasks_reads_the_data_dir_from_the_environment(capsys, data_dir, monkeypatch):
    monkeypatch.setenv("ADAMEZO_DATA", str(data_dir))
    header, rows = blocks(capsys)
    assert header == f"data directory: {data_dir} (from ADAMEZO_DATA)"
    assert [rows["cb"]["train"], rows["cb"]["validation"]] == [
        "cb/train.jsonl",
        "cb/validation.jsonl",
    ]


@pytest.mark.parametrize("argv", [[], ["--data-dir", "DATA"], ["--templates"]])
def test_tasks_lines_fit_100_columns(capsys, data_dir, argv):
    argv = [str(data_dir) if a == "DATA" else a for a in argv]
    assert main(["tasks", *argv]) == 0
    long = [line for line in capsys.readouterr().out.splitlines() if len(line) > 100]
    assert long == []


def test_tasks_templates_prints_one_template_per_task(capsys):
    assert main(["tasks", "--templates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = [line for line in lines if not line.startswith(" ")]
    assert [line.split(":")[0] for line in starts] == list_tasks()
    assert lines[0] == "sst2: {sentence} It was {terrible, great}  (sentence stripped)"


def test_docs_show_every_template_and_note_as_the_code_has_them():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text(encoding="utf-8")
    for name in list_tasks():
        task = get_task(name)
        assert f"| {name} | `{task.template}` | {task.note or '—'} |" in docs
