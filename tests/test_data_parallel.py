"""Data-parallel training on 2 processes (gloo, CPU) against one process on the whole batch.

One run of the two processes (``results``) trains every scenario; each test checks one property
of what it recorded. Reference runs happen in the test process itself.
"""

from __future__ import annotations

import io
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from adamezo import distributed
from tests.distributed_setup import (
    OPTIMIZERS,
    STEPS,
    TOLERANCE,
    flat,
    make_data,
    make_model,
    make_optimizer,
    reference,
    train,
)
from tests.multiprocess import run_group

pytestmark = pytest.mark.slow

EQUAL_ROWS, UNEVEN_ROWS = 12, 11
FAIL_AT = 2


def _outcome(function: Any) -> tuple[str, str]:
    try:
        function()
    except Exception as error:
        return type(error).__name__, str(error)
    return "ok", ""


def _failure_scenario(rank: int) -> dict[str, Any]:
    x, y = make_data(EQUAL_ROWS)
    (xs, ys), n = distributed.shard_batch((x, y))
    model = make_model()
    optimizer = make_optimizer("AdaMeZO", model)
    train(optimizer, model, xs, ys, FAIL_AT)
    before = flat(model)
    calls = []

    def failing_closure() -> torch.Tensor:
        calls.append(1)
        if rank == 1 and len(calls) == 2:  # the minus pass, θ perturbed
            raise RuntimeError("bad batch on rank 1")
        return F.mse_loss(model(xs), ys)

    error = _outcome(lambda: optimizer.step(failing_closure, weight=n))
    after_failure = flat(model)
    train(optimizer, model, xs, ys, STEPS - FAIL_AT, weight=n)
    return {
        "error": error,
        "restore error": float((after_failure - before).abs().max()),
        "after failure": after_failure,
        "steps_after_failure": optimizer.num_steps,
        "final": flat(model),
    }


def _resume_scenario(name: str) -> dict[str, Any]:
    x, y = make_data(EQUAL_ROWS)
    (xs, ys), n = distributed.shard_batch((x, y))
    model = make_model()
    optimizer = make_optimizer(name, model)
    train(optimizer, model, xs, ys, 3, weight=n)
    # Rank 0 writes the checkpoint; every process resumes from rank 0's copy.
    buffer = io.BytesIO()
    if distributed.is_main_process():
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    payload = [buffer.getvalue()]
    dist.broadcast_object_list(payload, src=0)
    checkpoint = torch.load(io.BytesIO(payload[0]), weights_only=False)
    resumed_model = make_model(init_seed=99)
    resumed_model.load_state_dict(checkpoint["model"])
    resumed = make_optimizer(name, resumed_model)
    resumed.load_state_dict(checkpoint["optimizer"])
    train(resumed, resumed_model, xs, ys, STEPS - 3, weight=n)
    return {"final": flat(resumed_model)}


def _worker(rank: int, world_size: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    x, y = make_data(EQUAL_ROWS)
    (xs, ys), n = distributed.shard_batch((x, y))
    for name in OPTIMIZERS:
        model = make_model()
        losses = train(make_optimizer(name, model), model, xs, ys, weight=n)
        results[f"equal/{name}"] = (flat(model), losses)
    model = make_model()
    train(make_optimizer("AdaMeZO", model, perturbation="exact"), model, xs, ys, weight=n)
    results["equal-exact/AdaMeZO"] = flat(model)

    xu, yu = make_data(UNEVEN_ROWS)
    (xus, yus), nu = distributed.shard_batch((xu, yu))
    results["uneven/rows"] = nu
    for weighting in ("weighted", "unweighted"):
        model = make_model()
        weight = nu if weighting == "weighted" else None
        train(make_optimizer("AdaMeZO", model), model, xus, yus, weight=weight)
        results[f"uneven/{weighting}"] = flat(model)

    # Every collective of the first and of the later steps of MeZO (2 passes), HiZOO (3).
    for name in ("MeZO", "HiZOO"):
        model = make_model()
        optimizer = make_optimizer(name, model)
        with distributed.count_collectives() as first:
            train(optimizer, model, xs, ys, 1, weight=n)
        with distributed.count_collectives() as later:
            train(optimizer, model, xs, ys, 3, weight=n)
        results[f"collectives/{name}"] = (first.calls, later.calls)

    results["failure"] = _failure_scenario(rank)
    for name in ("AdaMeZO", "ZOAdam", "HiZOO"):
        results[f"resume/{name}"] = _resume_scenario(name)

    # A NaN on one process makes the averaged loss NaN everywhere: every process skips.
    model = make_model()
    optimizer = make_optimizer("MeZO", model)
    before = flat(model)
    nan_here = torch.tensor(float("nan") if rank == 1 else 0.0, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optimizer.step(lambda: F.mse_loss(model(xs), ys) + nan_here)
    results["nan on one process"] = (optimizer.skipped_steps, flat(model), before)

    model = make_model()
    optimizer = make_optimizer("MeZO", model)
    results["zero weights"] = _outcome(lambda: train(optimizer, model, xs, ys, 1, weight=0))

    model = make_model()
    optimizer = make_optimizer("MeZO", model)
    before = flat(model)
    bad_weight = -1.0 if rank == 1 else n
    results["bad weight"] = (
        _outcome(lambda: optimizer.step(lambda: F.mse_loss(model(xs), ys), weight=bad_weight)),
        float((flat(model) - before).abs().max()),
        optimizer.num_steps,
    )

    model = make_model()
    before = flat(model)
    seeded = OPTIMIZERS["MeZO"](list(model.parameters()), seed=rank)
    results["seed mismatch"] = (
        _outcome(lambda: train(seeded, model, xs, ys, 1)),
        torch.equal(before, flat(model)),
    )

    model = make_model()
    before = flat(model)
    cycled = make_optimizer("MeZO", model, direction_seeds=2 + rank)
    results["direction seeds mismatch"] = (
        _outcome(lambda: train(cycled, model, xs, ys, 1)),
        torch.equal(before, flat(model)),
    )

    model = make_model(init_seed=1 + rank)
    optimizer = make_optimizer("MeZO", model)
    mismatch = _outcome(lambda: train(optimizer, model, xs, ys, 1))
    distributed.broadcast_parameters(model)
    results["broadcast"] = (flat(model), flat(make_model(init_seed=1)))
    results["weight mismatch"] = (mismatch, _outcome(lambda: train(optimizer, model, xs, ys, 1)))

    model = make_model()
    train(make_optimizer("MeZO", model, process_group=False), model, xs, ys)
    results["opt out"] = flat(model)

    model = make_model()
    group = dist.new_group([0, 1])
    train(make_optimizer("MeZO", model, process_group=group), model, xs, ys, weight=n)
    results["explicit group"] = flat(model)
    return results


@pytest.fixture(scope="module")
def results() -> list[dict[str, Any]]:
    reference("MeZO", EQUAL_ROWS)  # the first optimizer imports torch._dynamo: once, before forking
    return run_group(_worker)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_two_processes_match_one_process_on_the_concatenated_batch(results, name):
    expected, expected_losses = reference(name, EQUAL_ROWS)
    weights, losses = results[0][f"equal/{name}"]
    torch.testing.assert_close(weights, expected, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected_losses))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_process_holds_identical_weights(results, name):
    assert torch.equal(results[0][f"equal/{name}"][0], results[1][f"equal/{name}"][0])


def test_exact_steps_agree_across_processes_and_match_in_place_ones_to_rounding(results):
    exact = results[0]["equal-exact/AdaMeZO"]
    assert torch.equal(exact, results[1]["equal-exact/AdaMeZO"])
    torch.testing.assert_close(exact, results[0]["equal/AdaMeZO"][0], rtol=0, atol=TOLERANCE)


def test_uneven_shards_are_weighted_by_their_size(results):
    assert [r["uneven/rows"] for r in results] == [6, 5]
    expected, _ = reference("AdaMeZO", UNEVEN_ROWS)
    torch.testing.assert_close(results[0]["uneven/weighted"], expected, rtol=0, atol=TOLERANCE)
    assert torch.equal(results[0]["uneven/weighted"], results[1]["uneven/weighted"])


def test_unweighted_uneven_shards_do_not_match_the_global_batch(results):
    expected, _ = reference("AdaMeZO", UNEVEN_ROWS)
    assert (results[0]["uneven/unweighted"] - expected).abs().max() > 1e-9


@pytest.mark.parametrize(("name", "passes"), [("MeZO", 2), ("HiZOO", 3)])
def test_a_step_communicates_one_all_reduce_of_passes_plus_two_float64(results, name, passes):
    first, later = results[0][f"collectives/{name}"]
    # Before its first step the optimizer checks once that the processes agree (seed, step...).
    assert [call for call, _ in first] == ["all_reduce", "all_reduce"]
    assert first[1] == ("all_reduce", (passes + 2) * 8)
    assert later == [("all_reduce", (passes + 2) * 8)] * 3


def test_a_closure_failure_on_one_process_raises_on_every_process(results):
    assert results[1]["failure"]["error"] == ("RuntimeError", "bad batch on rank 1")
    kind, message = results[0]["failure"]["error"]
    assert kind == "DistributedStepError"
    assert "raised on 1 of 2 processes" in message


def test_a_closure_failure_on_one_process_restores_weights_on_every_process(results):
    # θ + μz − μz: restored up to the rounding of the two additions, identically everywhere.
    assert all(r["failure"]["restore error"] < 1e-15 for r in results)
    assert torch.equal(
        results[0]["failure"]["after failure"], results[1]["failure"]["after failure"]
    )


def test_processes_stay_in_step_after_a_failed_step(results):
    expected, _ = reference("AdaMeZO", EQUAL_ROWS)
    for r in results:
        assert r["failure"]["steps_after_failure"] == STEPS
        torch.testing.assert_close(r["failure"]["final"], expected, rtol=0, atol=TOLERANCE)
    assert torch.equal(results[0]["failure"]["final"], results[1]["failure"]["final"])


@pytest.mark.parametrize("name", ["AdaMeZO", "ZOAdam", "HiZOO"])
def test_resuming_from_rank_0s_checkpoint_matches_the_uninterrupted_run(results, name):
    uninterrupted = results[0][f"equal/{name}"][0]
    for r in results:
        assert torch.equal(r[f"resume/{name}"]["final"], uninterrupted)


def test_a_nan_on_one_process_skips_the_step_on_every_process(results):
    for r in results:
        skipped, after, before = r["nan on one process"]
        assert skipped == 1
        torch.testing.assert_close(after, before, rtol=0, atol=1e-15)


def test_weights_summing_to_zero_raise_on_every_process(results):
    for r in results:
        kind, message = r["zero weights"]
        assert kind == "DistributedStepError" and "sum to zero" in message


def test_a_bad_weight_on_one_process_raises_on_every_process_and_changes_nothing(results):
    (kind, message), moved, steps = results[1]["bad weight"]
    assert kind == "ValueError" and "weight must be >= 0" in message
    assert moved == 0.0 and steps == 0  # it raised before any forward pass
    (kind, message), moved, steps = results[0]["bad weight"]
    assert kind == "DistributedStepError" and "raised on 1 of 2 processes" in message
    assert moved < 1e-15 and steps == 0  # its passes ran; θ restored up to rounding


def test_different_seeds_raise_on_every_process_and_change_nothing(results):
    for r in results:
        (kind, message), unchanged = r["seed mismatch"]
        assert kind == "DistributedStepError" and "seed" in message
        assert unchanged


def test_different_direction_cycles_raise_on_every_process_and_change_nothing(results):
    for r in results:
        (kind, message), unchanged = r["direction seeds mismatch"]
        assert kind == "DistributedStepError" and "direction_seeds" in message
        assert unchanged


def test_different_weights_raise_until_rank_0s_are_broadcast(results):
    for r in results:
        (kind, message), after_broadcast = r["weight mismatch"]
        assert kind == "DistributedStepError" and "sum of the weights" in message
        assert after_broadcast == ("ok", "")
    assert torch.equal(*results[1]["broadcast"])


def test_process_group_false_trains_each_process_on_its_own_shard(results):
    x, y = make_data(EQUAL_ROWS)
    for rank, r in enumerate(results):
        rows = distributed.shard_range(EQUAL_ROWS, rank, 2)
        model = make_model()
        optimizer = make_optimizer("MeZO", model)
        train(optimizer, model, x[rows.start : rows.stop], y[rows.start : rows.stop])
        assert torch.equal(r["opt out"], flat(model))


def test_an_explicit_process_group_trains_like_the_default_one(results):
    for r in results:
        assert torch.equal(r["explicit group"], r["equal/MeZO"][0])


def test_the_torchrun_example_trains_like_one_process(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "distributed_training.py"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, parallel = tmp_path / "single.pt", tmp_path / "parallel.pt"
    with mock.patch.object(sys, "argv", [str(script), "--steps=30", f"--out={single}"]):
        runpy.run_path(str(script), run_name="__main__")  # one process, in this one
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    run = subprocess.run(
        [*launcher, "--nproc-per-node=2", script, "--steps=30", f"--out={parallel}"],
        check=True,
        timeout=120,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert "processes 2" in run.stdout
    expected, weights = torch.load(single), torch.load(parallel)
    # float32: the mean of two half-batch losses differs from the whole batch's mean in the last
    # bits, and p = Δℓ/2μ scales that by 1/μ; the float64 tests above compare to TOLERANCE.
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-3, atol=1e-4)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _group_from_env_worker(rank: int, world_size: int) -> dict[str, Any]:
    before = _threads()
    with distributed.process_group_from_env() as several:
        inside = _threads()
        total = torch.ones(1)
        dist.all_reduce(total)
        decided = distributed.broadcast_object(rank)  # a collective whose tensors torch makes
        run = {"group": dist.group.WORLD}  # as a run's objects hold it: in a reference cycle
        run["self"] = run
        total = total.item()
        del run
    return {
        "several": several,
        "sum": total,
        "decided": decided,
        "before": before,
        "inside": inside,
        "after": _threads(),
        "initialized": dist.is_initialized(),
    }


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_group_started_from_the_launchers_env_ends_with_its_threads_joined():
    # A gloo worker thread still alive at interpreter exit can abort the process (it cannot take
    # the GIL to release the last collective's tensors), failing a finished torchrun job.
    for rank, seen in enumerate(run_group(_group_from_env_worker, launcher_env=True)):
        assert seen["several"] and seen["sum"] == 2.0 and seen["decided"] == 0, rank
        assert not seen["initialized"], rank
        assert seen["inside"] > seen["before"], rank  # the group's threads ran
        assert seen["after"] == seen["before"], rank  # and are gone
