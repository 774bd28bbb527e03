"""A tensor listed twice, or two tensors sharing memory, would be perturbed and updated twice per
step along two different directions: the optimizers refuse them with a clear ValueError."""

import pytest
import torch

import adamezo


@pytest.mark.parametrize("optimizer", [adamezo.MeZO, adamezo.AdaMeZO])
def test_same_tensor_twice_in_one_group_is_rejected(optimizer):
    w = torch.nn.Parameter(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="listed once"):
        optimizer([w, torch.nn.Parameter(torch.zeros(2)), w], lr=1e-3)


def test_same_tensor_in_two_groups_is_rejected():
    w = torch.nn.Parameter(torch.zeros(5))
    with pytest.raises(ValueError, match="listed once"):
        adamezo.MeZO([{"params": [w]}, {"params": [w], "lr": 1e-4}], lr=1e-3)


def test_same_tensor_added_later_is_rejected():
    w = torch.nn.Parameter(torch.zeros(5))
    optimizer = adamezo.AdaMeZO([w], lr=1e-3)
    with pytest.raises(ValueError, match="listed once"):
        optimizer.add_param_group({"params": [w]})


@pytest.mark.parametrize(
    "views",
    [
        lambda base: (base[:6], base[4:]),  # overlapping slices
        lambda base: (base, base.view(2, 5)),  # the whole storage twice
        lambda base: (base[2:5], base),  # one inside the other
    ],
)
def test_tensors_sharing_memory_are_rejected(views):
    base = torch.zeros(10)
    a, b = views(base)
    with pytest.raises(ValueError, match="share memory"):
        adamezo.MeZO([a.requires_grad_(), b.requires_grad_()], lr=1e-3)


def test_disjoint_views_and_tied_modules_are_accepted():
    base = torch.zeros(10)
    adamezo.MeZO([base[:5].requires_grad_(), base[5:].requires_grad_()], lr=1e-3)
    embed = torch.nn.Embedding(7, 3)
    head = torch.nn.Linear(3, 7, bias=False)
    head.weight = embed.weight  # tied: parameters() lists the shared tensor once
    model = torch.nn.Sequential(embed, head)
    adamezo.AdaMeZO(model.parameters(), lr=1e-3)
    adamezo.MeZO([torch.zeros(0).requires_grad_(), torch.zeros(0).requires_grad_()], lr=1e-3)
