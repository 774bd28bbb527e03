"""The registry's passes per step: read from each optimizer's estimator without building one, and
equal to what an optimizer built at its defaults evaluates."""

import pytest
import torch

from adamezo.optim.base import ZerothOrderOptimizer
from adamezo.optim.registry import OPTIMIZERS, optimizer_entry


def built(entry, **fixed):
    params = [torch.zeros(4, 3, requires_grad=True), torch.zeros(3, requires_grad=True)]
    required = {"norm_schedule": [1e-3]} if "norm_schedule" in entry.required else {}
    entry = entry.variant(fixed={**entry.fixed, **fixed})
    return entry.build(params, lr=entry.default_lr["full"], **required)


@pytest.mark.parametrize("name", [n for n, e in OPTIMIZERS.items() if e.zeroth_order])
def test_passes_per_step_are_those_an_optimizer_built_at_its_defaults_evaluates(name):
    entry = optimizer_entry(name)
    assert entry.passes_per_step == len(built(entry).passes)


def test_the_study_methods_passes_per_step():
    passes = {name: entry.passes_per_step for name, entry in OPTIMIZERS.items()}
    assert {n: p for n, p in passes.items() if p != 2} == {"hizoo": 3, "fzoo": 9, "zo-muon": 5}
    assert passes["fo-adam"] == 2  # a forward and a backward pass


@pytest.mark.parametrize(("name", "queries"), [("fzoo", 3), ("zo-muon", 7)])
def test_another_default_number_of_queries_changes_the_passes_per_step(name, queries):
    entry = optimizer_entry(name).variant(fixed={"queries": queries})
    assert entry.passes_per_step == queries + 1 == len(built(entry).passes)


def test_an_estimator_set_per_instance_without_estimator_at_is_a_type_error():
    class PerInstance(ZerothOrderOptimizer):
        @property
        def estimator(self):
            raise AssertionError("never built")

    with pytest.raises(TypeError, match="PerInstance sets its estimator per instance"):
        PerInstance.estimator_at({})
