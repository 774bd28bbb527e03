"""Training on one's own files: from the CLI, from Python, and the errors bad input gets."""

import json
import re

import pytest
import torch

from adamezo.cli import main
from adamezo.finetune.config import FinetuneConfig
from adamezo.tasks.custom import CustomTask, OwnDataError, load_own_data, task_data_from_rows
from tests.finetune.helpers import config, sentiment_sentences, train

VERBALIZERS = ["terrible", "great"]


def write_csv(path, n=40, seed=0, words=True):
    rows = sentiment_sentences(n, seed)
    labels = VERBALIZERS if words else ["0", "1"]
    path.write_text("text,label\n" + "".join(f"{s},{labels[y]}\n" for s, y in rows))
    return path


def own(path, **overrides):
    settings = dict(template="{text} It was", label_column="label", verbalizers=VERBALIZERS)
    settings.update(overrides)
    return load_own_data(path, **settings)


def test_a_csv_gives_examples_with_the_verbalizers_as_candidates(tmp_path):
    data = own(write_csv(tmp_path / "reviews.csv"), n_train=10, n_dev=5, n_test=5)
    first = data.train[0]
    assert first.prompt.endswith(" It was")
    assert first.candidates == (" terrible", " great")
    assert data.task.name == "reviews" and data.task.kind == "classification"
    assert (len(data.train), len(data.dev), len(data.test)) == (10, 5, 5)


def test_labels_may_be_verbalizer_indices(tmp_path):
    by_word = own(write_csv(tmp_path / "a.csv"), n_train=30, n_dev=5, n_test=5)
    by_index = own(write_csv(tmp_path / "a.csv", words=False), n_train=30, n_dev=5, n_test=5)
    assert [e.label for e in by_word.train] == [e.label for e in by_index.train]


def test_missing_dev_and_test_are_cut_from_train_disjointly_and_seeded(tmp_path):
    path = write_csv(tmp_path / "r.csv", n=40)
    data = own(path, n_train=20, n_dev=10, n_test=10)
    again = own(path, n_train=20, n_dev=10, n_test=10)
    ids = [{id(e) for e in part} for part in (data.train, data.dev, data.test)]
    assert sum(map(len, ids)) == 40 and len(set.union(*ids)) == 40
    assert data.train == again.train and data.dev == again.dev
    assert any("no test file" in note for note in data.notes)


def test_a_dev_file_is_used_as_the_dev_split(tmp_path):
    train_file = write_csv(tmp_path / "train.csv", n=30)
    dev_file = write_csv(tmp_path / "dev.csv", n=7, seed=5)
    data = own(train_file, dev_file=dev_file, n_train=20, n_dev=100, n_test=5)
    dev_prompts = sorted(e.prompt for e in own(dev_file, n_train=7, n_dev=0, n_test=0).train)
    assert sorted(e.prompt for e in data.dev) == dev_prompts


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_jsonl_json_and_parquet_read_like_csv(tmp_path, suffix):
    import datasets

    rows = [{"text": s, "label": VERBALIZERS[y]} for s, y in sentiment_sentences(20)]
    path = tmp_path / f"r{suffix}"
    if suffix == ".parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = own(write_csv(tmp_path / "r.csv", n=20), n_train=10, n_dev=5, n_test=5)
    assert own(path, n_train=10, n_dev=5, n_test=5).train == csv.train


def test_a_target_column_makes_a_generation_task(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\n" + "".join(f"q{i}?,a{i}\n" for i in range(20)))
    data = load_own_data(
        path, template="Q: {question}\nA:", target_column="answer", n_train=5, n_dev=5, n_test=5
    )
    assert data.task.kind == "generation" and data.task.metric == "f1"
    example = data.train[0]
    assert example.target == " " + example.answers[0] + "\n"


def test_task_data_from_a_datasets_dataset(tmp_path):
    import datasets

    rows = [{"text": s, "label": y} for s, y in sentiment_sentences(20)]
    task = CustomTask("mine", "{text} It was", label_column="label", verbalizers=VERBALIZERS)
    data = task_data_from_rows(
        task, datasets.Dataset.from_list(rows), n_train=10, n_dev=5, n_test=5
    )
    assert data.task is task and len(data.train) == 10


# -- bad input: one clear error naming file, row and column ----------------------------------


def test_an_unknown_label_column_names_the_file_and_the_columns(tmp_path):
    path = write_csv(tmp_path / "r.csv")
    with pytest.raises(OwnDataError, match=r"r\.csv: no column 'sentiment'.*'text', 'label'"):
        own(path, label_column="sentiment")


def test_a_template_field_that_is_no_column_is_named(tmp_path):
    path = write_csv(tmp_path / "r.csv")
    with pytest.raises(OwnDataError, match=r"r\.csv: no column 'review'"):
        own(path, template="{review} It was")


def test_a_label_outside_the_verbalizers_names_file_row_and_column(tmp_path):
    path = write_csv(tmp_path / "r.csv", n=5)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",meh"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OwnDataError, match=r"r\.csv, row 3: label 'meh' in column 'label'"):
        own(path)


def test_an_empty_file_is_refused_by_name(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(OwnDataError, match=r"empty\.csv: the file is empty"):
        own(path)


def test_a_header_without_rows_is_refused_by_name(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n")
    with pytest.raises(OwnDataError, match=r"header\.csv"):
        own(path)


def test_an_empty_cell_names_row_and_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\ngood,great\n,terrible\n")
    with pytest.raises(OwnDataError, match=r"r\.csv, row 2: column 'text' is empty"):
        own(path)


def test_settings_are_checked_before_any_file_is_read(tmp_path):
    path = write_csv(tmp_path / "r.csv")
    bad = [
        (dict(template=None), "template"),
        (dict(verbalizers=["great"]), "verbalizers"),
        (dict(target_column="text"), "not both"),
        (dict(train_file=str(tmp_path / "r.xlsx")), "train_file.*xlsx"),
        (dict(train_file=str(tmp_path / "none.csv")), "train_file: file not found"),
        (dict(template="{} It was"), "field"),
    ]
    for overrides, message in bad:
        settings = dict(
            train_file=str(path),
            template="{text}",
            label_column="label",
            verbalizers=VERBALIZERS,
        )
        settings.update(overrides)
        with pytest.raises(ValueError, match=message):
            FinetuneConfig(**settings).validate()


def test_own_data_settings_without_a_train_file_are_refused():
    with pytest.raises(ValueError, match="template: goes with train_file"):
        FinetuneConfig(template="{text}").validate()


def test_the_task_is_named_by_the_file_stem_or_task_name(tmp_path):
    path = str(write_csv(tmp_path / "my_reviews.csv"))
    settings = dict(train_file=path, template="{text}", label_column="label")
    plain = FinetuneConfig(**settings, verbalizers=VERBALIZERS).resolved()
    named = FinetuneConfig(**settings, verbalizers=VERBALIZERS, task_name="mood").resolved()
    assert plain.task == "my_reviews" and plain.output_dir.startswith("runs/my_reviews-")
    assert named.task == "mood"


# -- end to end ------------------------------------------------------------------------------


def test_python_run_on_own_data_names_the_task_in_metrics(tmp_path, tokenizer):
    data = own(write_csv(tmp_path / "reviews.csv"), n_train=16, n_dev=8, n_test=8)
    cfg = config(tmp_path, task="reviews", steps=2)
    result = train(cfg, tokenizer, data=data)
    assert result.metrics["task"] == "reviews"
    assert "test_accuracy" in result.metrics["test"]


def test_cli_trains_on_a_csv_in_one_command(tmp_path, tiny_model_dir, capsys):
    path = write_csv(tmp_path / "reviews.csv", n=40)
    run = tmp_path / "run"
    code = main(
        [
            "finetune",
            "--model",
            str(tiny_model_dir),
            "--train-file",
            str(path),
            "--template",
            "{text} It was",
            "--label-column",
            "label",
            "--verbalizers",
            "terrible,great",
            "--n-train",
            "16",
            "--n-dev",
            "8",
            "--n-test",
            "8",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--eval-every",
            "2",
            "--device",
            "cpu",
            "--no-progress",
            "--output-dir",
            str(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "reviews"
    assert json.loads((run / "config.json").read_text())["task"] == "reviews"
    assert "test_accuracy" in metrics["test"]
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--split", "test", "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test_accuracy"] == metrics["test"]["test_accuracy"]


def test_cli_bad_label_fails_before_the_run_directory_is_claimed(tmp_path, tiny_model_dir, capsys):
    path = tmp_path / "r.csv"
    path.write_text("text,label\ngood,great\nbad,awful\n")
    run = tmp_path / "run"
    code = main(
        [
            *("finetune", "--model", str(tiny_model_dir), "--train-file", str(path)),
            *("--template", "{text}", "--label-column", "label", "--verbalizers", "terrible,great"),
            *("--output-dir", str(run), "--no-progress", "--device", "cpu"),
        ]
    )
    assert code == 2
    assert "r.csv, row 2: label 'awful'" in capsys.readouterr().err
    assert not run.exists()


def test_the_readme_csv_example_loads_as_the_readme_says(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Your own data") :]
    csv = re.search(r"```csv\n(.*?)```", section, re.S).group(1)
    (tmp_path / "reviews.csv").write_text(csv)
    data = load_own_data(
        tmp_path / "reviews.csv",
        template="Review: {text} It was",
        label_column="label",
        verbalizers=["terrible", "great"],
        n_train=1,
        n_dev=1,
        n_test=1,
    )
    labels = sorted(e.label for e in data.train + data.dev + data.test)
    assert data.task.name == "reviews" and labels == [0, 1, 1]
    assert all(e.prompt.startswith("Review: ") for e in data.train)


# -- issue 27: input that was silently renamed, mis-reported or cut ---------------------------


def test_two_columns_of_the_same_name_are_refused_naming_file_and_column(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,text,label\na,b,great\nc,d,terrible\n")
    with pytest.raises(OwnDataError, match=r"dup\.csv: .*column 'text' .*twice"):
        own(path, n_train=1, n_dev=0, n_test=0)


@pytest.mark.parametrize(
    "name, text", [("header.csv", "text,label\n"), ("blank.jsonl", "\n\n"), ("empty.json", "[]")]
)
def test_a_file_without_rows_says_so(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(
        OwnDataError, match=rf"{name.replace('.', '[.]')}: the file holds no rows"
    ) as error:
        own(path)
    assert "Instruction" not in str(error.value)


@pytest.mark.parametrize("cell", ["", '""', "  "])
def test_an_empty_label_cell_names_file_row_and_column(tmp_path, cell):
    path = tmp_path / "r.csv"
    path.write_text(f"text,label\ngood,great\nbad,{cell}\n")
    with pytest.raises(OwnDataError, match=r"r\.csv, row 2: column 'label' is empty"):
        own(path, n_train=1, n_dev=0, n_test=0)


def test_the_split_does_not_depend_on_the_file_name_or_line_endings(tmp_path):
    lines = write_csv(tmp_path / "rev40.csv", n=40).read_text().splitlines()
    (tmp_path / "crlf.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    first = own(tmp_path / "rev40.csv", n_train=20, n_dev=10, n_test=10)
    second = own(tmp_path / "crlf.csv", n_train=20, n_dev=10, n_test=10)
    for a, b in ((first.train, second.train), (first.dev, second.dev), (first.test, second.test)):
        assert [(e.prompt, e.label) for e in a] == [(e.prompt, e.label) for e in b]
    other_seed = own(tmp_path / "rev40.csv", n_train=20, n_dev=10, n_test=10, seed=1)
    assert [e.prompt for e in other_seed.train] != [e.prompt for e in first.train]


def test_same_rows_under_another_name_train_the_same_weights(tmp_path, tiny_model_dir, capsys):
    from safetensors.torch import load_file

    lines = write_csv(tmp_path / "rev40.csv", n=40).read_text().splitlines()
    (tmp_path / "crlf.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    weights = []
    for name in ("rev40", "crlf"):
        run = tmp_path / f"run-{name}"
        code = main(
            [
                *("finetune", "--model", str(tiny_model_dir), "--train-file"),
                str(tmp_path / f"{name}.csv"),
                *("--template", "{text} It was", "--label-column", "label"),
                *("--verbalizers", "terrible,great", "--n-train", "16", "--n-dev", "8"),
                *("--n-test", "8", "--batch-size", "4", "--steps", "2", "--eval-every", "2"),
                *("--tuning", "full", "--no-keep-best", "--device", "cpu", "--no-progress"),
                *("--output-dir", str(run)),
            ]
        )
        assert code == 0, capsys.readouterr().err
        weights.append(load_file(str(run / "model" / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_an_over_long_text_field_is_cut_with_a_warning(tmp_path, tiny_model_dir):
    import warnings

    path = write_csv(tmp_path / "long.csv", n=24)
    with open(path, "a") as f:
        f.write("great " * 400 + ",great\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(
            [
                *("finetune", "--model", str(tiny_model_dir), "--train-file", str(path)),
                *("--template", "{text} It was", "--label-column", "label"),
                *("--verbalizers", "terrible,great", "--n-train", "21", "--n-dev", "2"),
                *("--n-test", "2", "--batch-size", "21", "--steps", "1", "--max-length", "64"),
                *("--device", "cpu", "--no-progress", "--output-dir", str(tmp_path / "run")),
            ]
        )
    assert code == 0
    cut = [str(w.message) for w in caught if "token limit" in str(w.message)]
    assert len(cut) == 1 and "longer than the 64-token limit" in cut[0], cut
    # Counted before training, in whichever split the long row fell.
    assert re.search(r"\b1 of (21 train|2 dev|2 test) prompts", cut[0]), cut
