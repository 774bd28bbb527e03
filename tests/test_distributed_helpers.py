"""The distributed helpers and arguments on a single process: batch sharding, rank-0 guards,
argument checks, and the failure report of the shared step. No process group is started here."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from adamezo import MeZO, distributed
from adamezo.collectives import active_group, local_shard
from adamezo.zo_step import Perturbation, evaluate_perturbed


def _model_and_data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1), torch.randn(8, 4), torch.randn(8, 1)


def _train(model, x, y, steps=3, **step_options):
    optimizer = MeZO(model.parameters(), lr=1e-2, **step_options.pop("options", {}))
    for _ in range(steps):
        optimizer.step(lambda: F.mse_loss(model(x), y), **step_options)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_range_splits_into_contiguous_shards_differing_by_at_most_one(world_size):
    for total in range(world_size, 20):
        shards = [distributed.shard_range(total, r, world_size) for r in range(world_size)]
        assert [i for shard in shards for i in shard] == list(range(total))
        sizes = [len(shard) for shard in shards]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1


def test_shard_range_rejects_a_batch_smaller_than_the_world():
    with pytest.raises(ValueError, match="cannot be split over 4 processes"):
        distributed.shard_range(3, 0, 4)


def test_shard_range_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank"):
        distributed.shard_range(10, 2, 2)


def test_shard_batch_of_a_tensor_gives_its_rows_and_their_count():
    shard, n = distributed.shard_batch(torch.arange(10), rank=1, world_size=3)
    assert shard.tolist() == [4, 5, 6] and n == 3


def test_shard_batch_cuts_every_column_of_a_dict_alike():
    batch = {"input_ids": torch.arange(14).reshape(7, 2), "label": list("abcdefg")}
    shard, n = distributed.shard_batch(batch, rank=1, world_size=2)
    assert n == 3 and shard["label"] == ["e", "f", "g"]
    assert shard["input_ids"].tolist() == [[8, 9], [10, 11], [12, 13]]


def test_shard_batch_treats_a_list_of_tensors_as_columns():
    x, y = torch.arange(6), torch.arange(6) * 10
    shard, n = distributed.shard_batch([x, y], rank=0, world_size=2)
    assert isinstance(shard, list) and n == 3
    assert shard[0].tolist() == [0, 1, 2] and shard[1].tolist() == [0, 10, 20]


def test_shard_batch_treats_a_list_of_other_things_as_examples():
    examples = [{"text": "a"}, {"text": "b"}, {"text": "c"}]
    assert distributed.shard_batch(examples, rank=1, world_size=2) == ([{"text": "c"}], 1)


def test_shard_batch_keeps_namedtuple_batches():
    Batch = namedtuple("Batch", "x y")
    shard, _ = distributed.shard_batch(Batch(torch.arange(4), torch.arange(4)), 1, 2)
    assert isinstance(shard, Batch) and shard.y.tolist() == [2, 3]


def test_shard_batch_rejects_columns_of_different_lengths():
    with pytest.raises(ValueError, match="same number of rows"):
        distributed.shard_batch({"a": torch.zeros(4), "b": torch.zeros(5)}, 0, 2)


def test_shard_batch_on_one_process_is_the_whole_batch():
    batch = torch.arange(5)
    shard, n = distributed.shard_batch(batch)
    assert torch.equal(shard, batch) and n == 5


def test_helpers_on_one_process_describe_rank_0_of_1():
    assert not dist.is_initialized()
    assert (distributed.world_size(), distributed.rank(), distributed.is_main_process()) == (
        1,
        0,
        True,
    )
    assert distributed.main_process_only(lambda: "logged")() == "logged"
    distributed.barrier()


def test_broadcast_parameters_on_one_process_changes_nothing():
    model, _, _ = _model_and_data()
    before = [p.detach().clone() for p in model.parameters()]
    distributed.broadcast_parameters(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_init_from_env_without_a_launcher_does_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env() is False
    assert not dist.is_initialized()


@pytest.mark.parametrize("value", ["gloo", True, 0])
def test_process_group_must_be_none_false_or_a_group(value):
    model, _, _ = _model_and_data()
    with pytest.raises(TypeError, match="process_group"):
        MeZO(model.parameters(), process_group=value)


def test_no_process_group_is_active_without_torch_distributed():
    assert active_group(None) is None and active_group(False) is None


def test_step_weight_must_be_a_non_negative_number():
    model, x, y = _model_and_data()
    optimizer = MeZO(model.parameters())
    with pytest.raises(ValueError, match="weight must be >= 0"):
        optimizer.step(lambda: F.mse_loss(model(x), y), weight=-1.0)
    with pytest.raises(TypeError, match="weight"):
        optimizer.step(lambda: F.mse_loss(model(x), y), weight="3")


def test_step_weight_and_process_group_false_leave_one_process_unchanged():
    plain = _train(*_model_and_data())
    weighted = _train(*_model_and_data(), weight=5)
    opted_out = _train(*_model_and_data(), options={"process_group": False})
    assert torch.equal(plain, weighted) and torch.equal(plain, opted_out)


def test_a_step_on_one_process_makes_no_collective_call():
    model, x, y = _model_and_data()
    with distributed.count_collectives() as log:
        _train(model, x, y)
    assert log.calls == []


def test_count_collectives_puts_the_torch_functions_back():
    original = dist.all_reduce
    with distributed.count_collectives():
        assert dist.all_reduce is not original
    assert dist.all_reduce is original


def test_the_local_shard_of_a_plain_tensor_is_all_of_it():
    param = torch.nn.Parameter(torch.randn(3, 2))
    tensor, offset, shards = local_shard(param)
    assert tensor.data_ptr() == param.data_ptr() and (offset, shards) == (0, 1)
    assert not tensor.requires_grad


def _failing_evaluation(reduce):
    theta = torch.zeros(3)
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("bad batch")
        return theta.sum()

    perturbation = Perturbation(lambda i, c, j: theta.add_(c), 1)
    with pytest.raises(RuntimeError, match="bad batch"):
        evaluate_perturbed(closure, perturbation, (1.0, -1.0), [], reduce=reduce)
    return theta


def test_a_failed_pass_is_reported_to_reduce_after_theta_is_restored():
    reported = []
    theta = _failing_evaluation(lambda losses: reported.append(losses))
    assert reported == [None] and torch.equal(theta, torch.zeros(3))


def test_a_failed_report_warns_and_keeps_the_closures_error():
    def broken(losses):
        raise ConnectionError("peer gone")

    with pytest.warns(RuntimeWarning, match="peer gone"):
        theta = _failing_evaluation(broken)
    assert torch.equal(theta, torch.zeros(3))
