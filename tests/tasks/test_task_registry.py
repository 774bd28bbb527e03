"""The registry: every task of the suite, its kind and metric, and the unknown-task error."""

import pytest

from adamezo.tasks import get_task, list_tasks

KINDS = {
    "sst2": ("classification", "accuracy"),
    "rte": ("classification", "accuracy"),
    "cb": ("classification", "accuracy"),
    "boolq": ("classification", "accuracy"),
    "wsc": ("classification", "accuracy"),
    "wic": ("classification", "accuracy"),
    "multirc": ("classification", "accuracy"),
    "copa": ("multiple_choice", "accuracy"),
    "record": ("multiple_choice", "accuracy"),
    "squad": ("generation", "f1"),
    "drop": ("generation", "f1"),
    "sst5": ("classification", "accuracy"),
    "snli": ("classification", "accuracy"),
    "mnli": ("classification", "accuracy"),
    "trec": ("classification", "accuracy"),
    "rotten_tomatoes": ("classification", "accuracy"),
}


def test_registry_lists_the_paper_tasks_and_the_demo_task():
    assert list_tasks() == list(KINDS)


@pytest.mark.parametrize("name", list(KINDS))
def test_each_task_has_its_kind_metric_and_name(name):
    task = get_task(name)
    assert (task.kind, task.metric) == KINDS[name]
    assert task.name == name


def test_names_are_case_insensitive_with_dash_or_underscore():
    assert get_task("SST-2") is get_task("sst2")
    assert get_task("Rotten-Tomatoes") is get_task("rotten_tomatoes")


def test_unknown_task_error_lists_known_tasks():
    with pytest.raises(ValueError, match=r"unknown task 'imdb'; known tasks: sst2, rte, cb"):
        get_task("imdb")


def test_protocol_dev_size_is_100_for_cb_and_copa_only():
    assert {name for name in KINDS if get_task(name).n_dev != 500} == {"cb", "copa"}
    assert get_task("cb").n_dev == get_task("copa").n_dev == 100
