"""Optimizer state and settings that would silently corrupt the weights are refused."""

import math

import pytest
import torch

import adamezo
from adamezo.optim import AdaMeZO, HiZOO, ZOAdam


def quadratic(tensors):
    return lambda: sum((t**2).sum() for t in tensors)


def test_an_lr_set_to_nan_after_construction_is_refused_at_step_time_naming_lr():
    params = [torch.ones(5, requires_grad=True)]
    optimizer = AdaMeZO(params, lr=1e-3)
    optimizer.param_groups[0]["lr"] = math.nan
    with pytest.raises(ValueError, match=r"^lr must be"):
        optimizer.step(quadratic(params))
    assert torch.equal(params[0], torch.ones(5))
    assert optimizer.num_steps == 0


@pytest.mark.parametrize("cls", [ZOAdam, HiZOO])
def test_load_state_dict_refuses_buffers_saved_for_parameters_of_other_shapes(cls):
    small = [torch.ones(4, requires_grad=True)]
    source = cls(small, lr=1e-3)
    source.step(quadratic(small))
    state = source.state_dict()
    target = cls([torch.ones(6, requires_grad=True)], lr=1e-3)
    with pytest.raises(ValueError, match=r"shape \(4,\), the parameter \(6,\)"):
        target.load_state_dict(state)


def test_load_state_dict_refuses_a_state_for_another_number_of_parameters():
    one = [torch.ones(4, requires_grad=True)]
    state = AdaMeZO(one, lr=1e-3).state_dict()
    two = [torch.ones(4, requires_grad=True), torch.ones(2, requires_grad=True)]
    with pytest.raises(ValueError, match="holds 1 parameters, the optimizer has 2"):
        AdaMeZO(two, lr=1e-3).load_state_dict(state)


@pytest.mark.parametrize(
    "perturbation, says", [("in_place", "up to rounding"), ("exact", "bitwise")]
)
def test_a_non_finite_loss_says_how_exactly_the_weights_were_restored(perturbation, says):
    """In place, θ + μd - μd rounds back to within an ulp of θ, not to θ: the warning must not
    claim more than that (only perturbation="exact" leaves θ untouched)."""
    import warnings

    param = torch.nn.Parameter(torch.randn(64))
    opt = adamezo.MeZO([param], lr=1e-3, seed=0, perturbation=perturbation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.step(lambda: torch.tensor(float("nan")))
    messages = [str(w.message) for w in caught if "non-finite" in str(w.message)]
    assert len(messages) == 1 and says in messages[0], messages
