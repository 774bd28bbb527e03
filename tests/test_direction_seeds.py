"""``direction_seeds``: N directions reused cyclically instead of a fresh direction every step."""

import pytest
import torch

import adamezo
from tests.test_update_math import AdaMeZOReference, check_against_reference
from tests.zo_reference import (
    MU,
    RecordingClosure,
    direction_from,
    loss_of,
    make_params,
    snapshot,
)

# One constructor per optimizer; HiZOO with α = 0 keeps H = 1, so its perturbation is exactly μz.
OPTIMIZERS = {
    "MeZO": lambda params, **kw: adamezo.MeZO(params, lr=1e-2, **kw),
    "AdaMeZO": lambda params, **kw: adamezo.AdaMeZO(params, lr=1e-2, horizon=3, **kw),
    "MEAZO": lambda params, **kw: adamezo.MEAZO(params, lr=1e-2, **kw),
    "ZOAdam": lambda params, **kw: adamezo.ZOAdam(params, lr=1e-2, **kw),
    "HiZOO": lambda params, **kw: adamezo.HiZOO(params, lr=1e-2, hessian_smoothing=0.0, **kw),
    "MeZOSwitch": lambda params, **kw: adamezo.MeZOSwitch(params, [0.01] * 20, **kw),
}


def directions_seen(name: str, steps: int, **options) -> list[torch.Tensor]:
    """z_t of each step, recovered from θ + μ z_t, the point the closure saw first."""
    params = make_params()
    opt = OPTIMIZERS[name](params, perturbation_scale=MU, seed=5, **options)
    closure = RecordingClosure(params)
    found = []
    for _ in range(steps):
        before = snapshot(params)
        first = len(closure.seen)
        opt.step(closure)
        plus = closure.seen[first + len(opt.passes) - 2]
        found.append(torch.cat([z.flatten() for z in direction_from(before, plus)]))
    return found


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_t_moves_along_the_direction_of_step_t_mod_n(name):
    found = directions_seen(name, 7, direction_seeds=3)
    for t in range(3, 7):
        torch.testing.assert_close(found[t], found[t % 3], rtol=0, atol=1e-9)
    assert not torch.allclose(found[0], found[1]) and not torch.allclose(found[1], found[2])


def test_fresh_directions_differ_every_step_by_default():
    found = directions_seen("MeZO", 4)
    assert all(not torch.allclose(found[i], found[j]) for i in range(4) for j in range(i))


def test_a_cycle_longer_than_the_run_gives_bitwise_the_default_run():
    a, b = make_params(), make_params()
    fresh = adamezo.AdaMeZO(a, lr=1e-2, seed=2)
    cyclic = adamezo.AdaMeZO(b, lr=1e-2, seed=2, direction_seeds=1000)
    for _ in range(6):
        fresh.step(lambda: loss_of(a))
        cyclic.step(lambda: loss_of(b))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_adamezo_regenerates_the_reused_directions_in_its_history_as_spec_says():
    params = make_params()
    opt = adamezo.AdaMeZO(params, lr=1e-2, horizon=4, perturbation_scale=MU, direction_seeds=2)
    check_against_reference(opt, params, AdaMeZOReference([1e-2, 1e-2], (0.7, 0.9), 4), steps=7)


def test_resuming_from_state_dict_keeps_the_cycle_bit_for_bit():
    a, b = make_params(), make_params()
    whole = adamezo.AdaMeZO(a, lr=1e-2, horizon=3, direction_seeds=2)
    first = adamezo.AdaMeZO(b, lr=1e-2, horizon=3, direction_seeds=2)
    for _ in range(3):
        whole.step(lambda: loss_of(a))
        first.step(lambda: loss_of(b))
    resumed = adamezo.AdaMeZO(b, lr=1e-2, horizon=3)  # saved options win, as in torch
    resumed.load_state_dict(first.state_dict())
    assert resumed.direction_seeds == 2
    for _ in range(4):
        whole.step(lambda: loss_of(a))
        resumed.step(lambda: loss_of(b))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_direction_seeds_is_refused_naming_the_argument(value, error):
    with pytest.raises(error, match="direction_seeds"):
        adamezo.MeZO(make_params(), direction_seeds=value)


def test_direction_seeds_is_one_value_per_optimizer_not_per_group():
    params = make_params()
    with pytest.raises(ValueError, match="direction_seeds is one value for the whole optimizer"):
        adamezo.MeZO([{"params": params, "direction_seeds": 2}])
