"""Two edge cases decided against the paper's code: K = 1 and weight decay of biases and norms."""

import argparse

import pytest
import torch

import adamezo
from adamezo.cli import build_parser
from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.flags import config_from_args
from adamezo.finetune.tuning import TunedModel, bias_and_norm_names


def _trajectory(cls, steps=6, **options):
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(50, dtype=torch.float64))
    target = torch.linspace(-1, 1, 50, dtype=torch.float64)
    opt = cls([param], lr=1e-2, perturbation_scale=1e-3, seed=3, **options)
    for _ in range(steps):
        opt.step(lambda: ((param - target) ** 2).sum())
    return param.detach().clone()


def test_reference_preset_with_horizon_1_is_plain_mezo_for_ever():
    reference = _trajectory(adamezo.AdaMeZO, preset="reference", horizon=1)
    assert torch.equal(reference, _trajectory(adamezo.MeZO))


def test_default_horizon_1_follows_the_formula_not_mezo():
    # n = 1 and normalised weights: u = p z / (|p z| + ε), one step of lr·≈1 per coordinate.
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.zeros(20, dtype=torch.float64))
    opt = adamezo.AdaMeZO([param], lr=1e-2, horizon=1, perturbation_scale=1e-3, seed=3)
    opt.step(lambda: param.sum())
    assert torch.allclose(
        param.detach().abs(), torch.full((20,), 1e-2, dtype=torch.float64), rtol=1e-3
    )


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2, bias=False)


def test_bias_and_norm_weights_are_found_by_name_and_module():
    assert bias_and_norm_names(Tiny()) == {"proj.bias", "norm.weight", "norm.bias"}


def test_excluding_bias_and_norm_makes_a_second_group_without_decay():
    model = Tiny()
    tuned = TunedModel("full", model, None, model)
    assert tuned.param_groups() == tuned.trainable_parameters()  # the default: one group
    decayed, exempt = tuned.param_groups(exclude_bias_norm=True)
    assert [p is model.proj.weight or p is model.head.weight for p in decayed["params"]] == [
        True,
        True,
    ]
    assert len(exempt["params"]) == 3 and exempt["weight_decay"] == 0.0
    opt = adamezo.MeZO([decayed, exempt], lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_the_flag_sets_the_config_field_and_the_default_is_off():
    assert FinetuneConfig().weight_decay_exclude_bias_norm is False
    args = build_parser().parse_args(["finetune", "--no-decay-bias-norm"])
    assert config_from_args(args).weight_decay_exclude_bias_norm is True
    assert not config_from_args(
        build_parser().parse_args(["finetune"])
    ).weight_decay_exclude_bias_norm
    assert isinstance(args, argparse.Namespace)


def test_the_setting_must_be_a_bool():
    with pytest.raises(TypeError, match="weight_decay_exclude_bias_norm"):
        FinetuneConfig(weight_decay_exclude_bias_norm="yes").validate()
