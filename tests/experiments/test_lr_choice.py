"""The lr grid rule over finished cells: the tuned lr, what it borrows, when a grid settles and
how it grows past an edge best."""

import math

import pytest

from adamezo.experiments.lr_choice import Extension, GridBook, LrChoice
from adamezo.finetune.lr_grid import centred_grid

MEZO_GRID = (3e-7, 1e-6, 3e-6, 1e-5)
BOOK = GridBook(grids={"mezo": MEZO_GRID}, like={"hizoo": "mezo"}, fixed={"fo-adam": 1e-5})


def record(lr, loss, task="sst2", schedule="constant", tags=("lr",), finished=True):
    return {
        "task": task,
        "optimizer": "mezo",
        "lr_schedule": schedule,
        "lr": lr,
        "best_dev_loss": loss,
        "tags": list(tags),
        "finished": finished,
    }


def choice(losses, **kwargs):
    return LrChoice([record(lr, loss, **kwargs) for lr, loss in zip(MEZO_GRID, losses)], BOOK)


def test_a_complete_grid_with_an_edge_best_grows_past_that_edge():
    top = choice([1.0, 0.9, 0.8, 0.7])
    assert top.extensions() == [Extension("sst2", "mezo", "constant", 3e-5)]
    assert top.settled("sst2", "mezo", "constant") is None
    bottom = choice([0.6, 0.9, 0.8, 0.7])
    assert bottom.extensions() == [Extension("sst2", "mezo", "constant", 1e-7)]


def test_the_grown_value_settles_the_grid_once_the_best_is_interior():
    records = [record(lr, loss) for lr, loss in zip(MEZO_GRID, [1.0, 0.9, 0.8, 0.7])]
    grown = LrChoice([*records, record(3e-5, 0.75)], BOOK)
    assert grown.extensions() == []
    assert grown.settled("sst2", "mezo", "constant") == 1e-5


def test_a_grid_grows_again_while_its_best_stays_at_the_edge():
    records = [record(lr, loss) for lr, loss in zip(MEZO_GRID, [1.0, 0.9, 0.8, 0.7])]
    grown = LrChoice([*records, record(3e-5, 0.6)], BOOK)
    assert grown.extensions() == [Extension("sst2", "mezo", "constant", 1e-4)]


def test_an_interior_best_does_not_grow_and_is_the_choice():
    settled = choice([1.0, 0.5, 0.7, 0.9])
    assert settled.extensions() == []
    assert settled.settled("sst2", "mezo", "constant") == MEZO_GRID[1]
    assert settled.lr("sst2", "mezo", "constant") == MEZO_GRID[1]


def test_an_incomplete_grid_neither_grows_nor_settles_but_gives_its_best_so_far():
    partial = LrChoice([record(lr, 1.0 - lr) for lr in MEZO_GRID[:3]], BOOK)
    assert partial.extensions() == []
    assert partial.settled("sst2", "mezo", "constant") is None
    assert partial.lr("sst2", "mezo", "constant") == MEZO_GRID[2]


def test_a_diverged_lr_never_wins_but_bounds_the_grid():
    diverged = choice([1.0, 0.9, 0.8, math.inf])
    assert diverged.best("sst2", "mezo", "constant") == MEZO_GRID[2]
    assert diverged.settled("sst2", "mezo", "constant") == MEZO_GRID[2]


def test_other_tasks_optimizers_and_schedules_borrow_the_reference_grid():
    settled = choice([1.0, 0.5, 0.7, 0.9])
    assert settled.lr("trec", "mezo", "constant") == MEZO_GRID[1]  # SST-2's choice
    assert settled.lr("sst2", "hizoo", "constant") == MEZO_GRID[1]  # MeZO's
    assert settled.lr("sst2", "mezo", "linear") == MEZO_GRID[1]  # the constant lr's
    assert settled.lr("sst2", "fo-adam", "constant") == 1e-5  # not tuned
    assert LrChoice([], BOOK).lr("sst2", "mezo", "constant") == MEZO_GRID[2]  # the middle


def test_a_decaying_grid_is_centred_on_the_settled_constant_lr_and_waits_for_it():
    assert choice([1.0, 0.9, 0.8]).planned_grid("sst2", "mezo", "linear") == ()
    settled = choice([1.0, 0.5, 0.7, 0.9])
    assert settled.planned_grid("sst2", "mezo", "linear") == centred_grid(MEZO_GRID[1])


def test_only_finished_cells_of_the_grid_tag_count():
    records = [record(lr, 1.0 - lr, tags=("betas",)) for lr in MEZO_GRID]
    records += [record(lr, 0.5, finished=False) for lr in MEZO_GRID]
    assert LrChoice(records, BOOK).records == []


@pytest.mark.parametrize("ties", [[0.5, 0.5, 0.7, 0.9]])
def test_a_tie_goes_to_the_smaller_lr(ties):
    assert choice(ties).best("sst2", "mezo", "constant") == MEZO_GRID[0]


def test_a_grid_book_refuses_an_empty_grid_or_a_like_without_a_grid():
    with pytest.raises(ValueError, match=r"grids\['mezo'\] must hold at least one lr"):
        GridBook(grids={"mezo": ()})
    with pytest.raises(ValueError, match=r"like\['hizoo'\] must name an optimizer of grids"):
        GridBook(grids={"mezo": (1e-6,)}, like={"hizoo": "adamezo"})


def test_an_optimizer_the_book_does_not_know_is_a_value_error_naming_the_known_ones():
    tuned = LrChoice([], GridBook(grids={"mezo": (1e-6, 1e-5, 1e-4)}, like={"hizoo": "mezo"}))
    assert tuned.lr("sst2", "hizoo", "constant") == 1e-5
    with pytest.raises(ValueError, match=r"one of \['hizoo', 'mezo'\].*got 'lozo'"):
        tuned.lr("sst2", "lozo", "constant")
