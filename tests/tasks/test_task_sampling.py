"""The sampling protocol: seeded, disjoint, sized per task, with notes where data falls short."""

import pytest
from task_files import write_text

from adamezo.tasks import load_task_data


def sst2_dir(tmp_path, n_train=60, n_validation=40):
    """A synthetic SST-2 directory whose sentences are all distinct."""
    header = "sentence\tlabel\n"
    train = "".join(f"train sentence {i} \t{i % 2}\n" for i in range(n_train))
    validation = "".join(f"validation sentence {i} \t{i % 2}\n" for i in range(n_validation))
    write_text(tmp_path / "sst2" / "train.tsv", header + train)
    write_text(tmp_path / "sst2" / "validation.tsv", header + validation)
    return tmp_path


def prompts(examples):
    return [e.prompt for e in examples]


def test_same_seed_gives_same_examples_in_same_order(data_dir):
    first = load_task_data("rte", data_dir, seed=3)
    second = load_task_data("rte", data_dir, seed=3)
    assert first.train == second.train and first.dev == second.dev and first.test == second.test


def test_different_seeds_give_different_samples(data_dir):
    first = load_task_data("rte", data_dir, seed=0)
    second = load_task_data("rte", data_dir, seed=1)
    assert prompts(first.train) != prompts(second.train)
    assert set(prompts(first.test)) == set(prompts(second.test))  # all 277 validation examples
    assert prompts(first.test) != prompts(second.test)


def test_train_dev_test_are_disjoint_and_come_from_their_splits(tmp_path):
    data = load_task_data("sst2", sst2_dir(tmp_path), seed=0, n_train=30, n_dev=20, n_test=25)
    train, dev, test = (set(prompts(part)) for part in (data.train, data.dev, data.test))
    assert (len(train), len(dev), len(test)) == (30, 20, 25)
    assert train.isdisjoint(dev)
    assert all(p.startswith("train sentence") for p in train | dev)
    assert all(p.startswith("validation sentence") for p in test)
    assert data.notes == []


def test_default_sizes_are_1000_train_500_dev_1000_test(data_dir):
    data = load_task_data("sst5", data_dir)
    assert (len(data.train), len(data.dev), len(data.test)) == (1000, 500, 1000)
    assert data.notes == []
    assert data.available == {"train": 5000, "validation": 2210}


def test_short_validation_split_gives_all_of_it_and_a_note(data_dir):
    data = load_task_data("sst2", data_dir)
    assert len(data.test) == 872
    assert data.notes == [
        "sst2: the validation split has 872 examples, fewer than n_test=1000: test uses all 872"
    ]


@pytest.mark.parametrize(("name", "sizes"), [("cb", (150, 100, 56)), ("copa", (300, 100, 100))])
def test_cb_and_copa_use_dev_100_and_train_on_the_rest(data_dir, name, sizes):
    data = load_task_data(name, data_dir)
    assert (len(data.train), len(data.dev), len(data.test)) == sizes
    assert any("dev takes 100, train the remaining" in note for note in data.notes)


def test_dev_does_not_change_with_the_number_of_training_examples(data_dir):
    small = load_task_data("rte", data_dir, n_train=10)
    large = load_task_data("rte", data_dir, n_train=1000)
    assert small.dev == large.dev
    assert small.train == large.train[:10]


def test_boolq_without_train_split_partitions_validation_with_a_note(data_dir):
    data = load_task_data("boolq", data_dir)
    assert (len(data.train), len(data.dev), len(data.test)) == (1000, 500, 1000)
    ids = [{id(e) for e in part} for part in (data.train, data.dev, data.test)]
    assert ids[0].isdisjoint(ids[1]) and ids[0].isdisjoint(ids[2]) and ids[1].isdisjoint(ids[2])
    (note,) = data.notes
    assert note.startswith("boolq has no train split here")
    assert "disjoint samples of its validation split (3270 examples" in note
    assert data.source.endswith("boolq/validation.jsonl")


def test_seed_must_be_an_int(tmp_path):
    with pytest.raises(TypeError, match="seed"):
        load_task_data("sst2", sst2_dir(tmp_path), seed=1.5)


def test_negative_size_is_rejected_naming_the_argument(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        load_task_data("sst2", sst2_dir(tmp_path), n_train=-1)


def test_nothing_left_to_train_on_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no train examples left"):
        load_task_data("sst2", sst2_dir(tmp_path, n_train=5), n_dev=10)


def test_built_in_orders_are_pinned():
    """Built-in tasks keep the order they always had (seeded by task name, seed and split):
    own data's seeding changing must not move a built-in task's split."""
    from adamezo.tasks.registry import get_task
    from adamezo.tasks.sampling import shuffled

    assert shuffled(get_task("sst2"), 0, "train", 12) == [1, 4, 6, 9, 2, 0, 3, 7, 11, 10, 8, 5]
    assert shuffled(get_task("trec"), 3, "validation", 12) == [2, 0, 9, 4, 6, 8, 7, 10, 1, 3, 11, 5]
