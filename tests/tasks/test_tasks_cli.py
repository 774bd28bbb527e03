"""The ``adamezo tasks`` command lists every task and where its data would come from."""

from pathlib import Path

from adamezo.cli import main
from adamezo.tasks import get_task, list_tasks


def table(capsys, *argv):
    assert main(["tasks", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    return lines[0], {line.split()[0]: line.split() for line in lines[2:-1]}


def test_tasks_lists_local_files_relative_to_the_data_dir(capsys, data_dir):
    header, rows = table(capsys, "--data-dir", str(data_dir))
    assert header == f"data directory: {data_dir} (from --data-dir)"
    assert rows["sst2"][1:] == [
        "classification",
        "accuracy",
        "sst2/train.tsv",
        "sst2/validation.tsv",
    ]
    assert rows["squad"][1:3] == ["generation", "f1"]
    assert len(rows) == 16


def test_tasks_says_which_splits_would_need_the_hub(capsys, data_dir):
    _, rows = table(capsys, "--data-dir", str(data_dir))
    boolq = " ".join(rows["boolq"])
    assert (
        "not local; needs huggingface:aps/super_glue/boolq[train] boolq/validation.jsonl" in boolq
    )
    assert " ".join(rows["drop"][3:]) == (
        "not local; needs huggingface:ucinlp/drop[train] "
        "not local; needs huggingface:ucinlp/drop[validation]"
    )


def test_tasks_without_data_dir_points_to_the_option(capsys):
    header, rows = table(capsys)
    assert header == "data directory: none (pass --data-dir or set ADAMEZO_DATA)"
    assert rows["rte"][3:5] == ["not", "local;"]
    assert rows["rotten_tomatoes"][3].endswith("rotten_tomatoes_corpus_full.csv.bz2")
    assert " ".join(rows["rotten_tomatoes"][4:]) == "(same file, fixed split)"


def test_tasks_reads_the_data_dir_from_the_environment(capsys, data_dir, monkeypatch):
    monkeypatch.setenv("ADAMEZO_DATA", str(data_dir))
    header, rows = table(capsys)
    assert header == f"data directory: {data_dir} (from ADAMEZO_DATA)"
    assert rows["cb"][3:] == ["cb/train.jsonl", "cb/validation.jsonl"]


def test_tasks_templates_prints_one_template_per_task(capsys):
    assert main(["tasks", "--templates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 16
    assert lines[0] == "sst2: {sentence} It was {terrible, great}  (sentence stripped)"


def test_docs_show_every_template_and_note_as_the_code_has_them():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text(encoding="utf-8")
    for name in list_tasks():
        task = get_task(name)
        assert f"| {name} | `{task.template}` | {task.note or '—'} |" in docs
