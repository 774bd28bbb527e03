"""Saving and loading optimizer state: an interrupted run resumes bit for bit."""

import io
import pickle

import pytest
import torch

import adamezo
from tests.zo_reference import OPTIMIZERS, build, loss_of, make_params

N = 4


def _roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_resume_after_save_and_load_is_bitwise_identical(name, dtype):
    options = {"horizon": 3} if name == "AdaMeZO" else {}
    straight = make_params(dtype=dtype)
    opt = build(name, straight, seed=7, **options)
    for _ in range(2 * N):
        opt.step(lambda: loss_of(straight))

    first = make_params(dtype=dtype)
    opt = build(name, first, seed=7, **options)
    for _ in range(N):
        opt.step(lambda: loss_of(first))
    saved_weights = [p.detach().clone() for p in first]
    saved_state = _roundtrip(opt.state_dict())

    resumed = [torch.nn.Parameter(w) for w in saved_weights]
    opt = build(name, resumed, seed=123, **options)  # the saved seed must win
    opt.load_state_dict(saved_state)
    for _ in range(N):
        opt.step(lambda: loss_of(resumed))
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))


@pytest.mark.parametrize("name", ["AdaMeZO", "MEAZO", "MeZO", "FZOO", "LOZO"])
def test_state_size_does_not_grow_with_the_model(name):
    def saved_bytes(size):
        params = [torch.nn.Parameter(torch.zeros(size)), torch.nn.Parameter(torch.zeros(size))]
        opt = build(name, params)
        for _ in range(12):
            opt.step(lambda: (params[0] - 1).square().sum() + params[1].sum())
        return len(pickle.dumps(opt.state_dict()))

    assert saved_bytes(10) == saved_bytes(100_000)


def test_adamezo_history_holds_at_most_horizon_pairs():
    params = make_params()
    opt = adamezo.AdaMeZO(params, horizon=4)
    for _ in range(9):
        opt.step(lambda: loss_of(params))
    assert [step for step, _ in opt.history] == [5, 6, 7, 8]


def test_loading_another_optimizers_state_is_refused():
    params = make_params()
    state = adamezo.MeZO(params).state_dict()
    with pytest.raises(ValueError, match="saved by 'MeZO'"):
        adamezo.AdaMeZO(params).load_state_dict(state)


def test_loading_a_plain_torch_state_is_refused():
    params = make_params()
    state = torch.optim.SGD(params, lr=0.1).state_dict()
    with pytest.raises(ValueError, match="not saved by an adamezo optimizer"):
        adamezo.AdaMeZO(params).load_state_dict(state)


def test_saved_optimizer_wide_options_win_on_load():
    params = make_params()
    state = adamezo.AdaMeZO(params, horizon=3, perturbation_scale=1e-2).state_dict()
    opt = adamezo.AdaMeZO(params, horizon=10)
    opt.load_state_dict(state)
    assert (opt.horizon, opt.perturbation_scale) == (3, 1e-2)


def test_state_dict_is_a_copy_not_a_view_of_live_state():
    params = make_params()
    opt = adamezo.AdaMeZO(params)
    opt.step(lambda: loss_of(params))
    state = opt.state_dict()
    opt.step(lambda: loss_of(params))
    assert len(state["zo"]["history"]) == 1
