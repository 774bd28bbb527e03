"""Property-based fuzzing (hypothesis, fixed seed, bounded examples): optimizer arguments and
step calls, odd closure returns, corrupted task files, state_dict round trips.

Each property is the contract a user relies on: any input either works or raises ValueError or
TypeError naming what was wrong, and a step that raises leaves the weights bitwise as they were;
never a silent NaN, an AssertionError or an IndexError.
"""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adamezo.optim import MEAZO, AdaMeZO, HiZOO, MeZO, MeZOSwitch, ZOAdam

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # a fixed seed: the same examples on every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

OPTIMIZERS = {
    "adamezo": (AdaMeZO, {}),
    "mezo": (MeZO, {}),
    "zo-adam": (ZOAdam, {}),
    "meazo": (MEAZO, {}),
    "hizoo": (HiZOO, {}),
    "mezo-switch": (MeZOSwitch, {"norm_schedule": [0.01] * 64}),
}

SHARED = ["lr", "weight_decay", "perturbation_scale", "seed", "direction_seeds", "chunk_size"]
SHARED += ["kernel", "nonfinite"]
OWN = {
    "adamezo": ["betas", "horizon", "eps", "normalize", "gain", "warmup_steps", "preset"],
    "mezo": [],
    "zo-adam": ["betas", "eps"],
    "meazo": ["beta", "eps"],
    "hizoo": ["hessian_smoothing"],
    "mezo-switch": ["norm_schedule"],
}

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    # Finite magnitudes up to 1e6: an lr of 1e38 overflows float32 weights by arithmetic, not by
    # a missing check (the fine-tuning loop stops such a diverged run with an error).
    st.floats(-1e6, 1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e-300, -0.0]),
    st.text(max_size=8),
    st.sampled_from(["auto", "reference", "skip", "raise", "torch", "triton"]),
    st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.just(np.float32(0.5)),
    st.just(torch.tensor(0.1)),
    st.just(object()),
)


def params(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(13, generator=generator).requires_grad_(),
        torch.randn(3, 4, generator=generator).requires_grad_(),
    ]


def quadratic(tensors):
    return lambda: sum(((t - 0.5) ** 2).sum() for t in tensors)


def snapshot(tensors):
    return [t.detach().clone() for t in tensors]


def unchanged(tensors, before) -> bool:
    """Bitwise as before: a step refused before any pass touches nothing."""
    return all(torch.equal(t, b) for t, b in zip(tensors, before, strict=True))


def restored(tensors, before) -> bool:
    """As before up to the rounding of θ + μz − μz (a few ulps), the documented restore."""
    for t, b in zip(tensors, before, strict=True):
        tolerance = 4 * torch.finfo(b.dtype).eps * float(b.abs().max())
        if not torch.allclose(t.detach(), b, rtol=0, atol=tolerance):
            return False
    return True


def names_the_argument(error: Exception, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", str(error)) is not None


@FUZZ
@given(st.data())
def test_any_constructor_argument_builds_a_working_optimizer_or_is_refused_by_name(data):
    key = data.draw(st.sampled_from(sorted(OPTIMIZERS)), label="optimizer")
    cls, required = OPTIMIZERS[key]
    name = data.draw(st.sampled_from(SHARED + OWN[key]), label="argument")
    value = data.draw(ANY_VALUE, label="value")
    tensors = params()
    try:
        optimizer = cls(tensors, **{**required, name: value})
    except (TypeError, ValueError) as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {error}"
        return
    for _ in range(3):
        before = snapshot(tensors)
        try:
            optimizer.step(quadratic(tensors))
        except (TypeError, ValueError) as error:  # e.g. a norm schedule that runs out
            assert names_the_argument(error, name), f"{name}={value!r}: {error}"
            assert restored(tensors, before)
            return
    assert all(torch.isfinite(t).all() for t in tensors), f"{name}={value!r} gave NaN weights"


@FUZZ
@given(st.data())
def test_any_param_group_change_after_construction_works_or_is_refused_at_step_time(data):
    key = data.draw(st.sampled_from(sorted(OPTIMIZERS)), label="optimizer")
    cls, required = OPTIMIZERS[key]
    tensors = params()
    optimizer = cls(tensors, lr=1e-3, **required)
    option = data.draw(st.sampled_from(["lr", "weight_decay"]), label="option")
    value = data.draw(ANY_VALUE, label="value")
    optimizer.param_groups[0][option] = value
    before = snapshot(tensors)
    try:
        optimizer.step(quadratic(tensors))
    except (TypeError, ValueError) as error:
        assert names_the_argument(error, option), f"{option}={value!r}: {error}"
        assert unchanged(tensors, before)
        return
    assert all(torch.isfinite(t).all() for t in tensors)


@FUZZ
@given(st.data())
def test_any_step_argument_works_or_is_refused_by_name(data):
    key = data.draw(st.sampled_from(sorted(OPTIMIZERS)), label="optimizer")
    cls, required = OPTIMIZERS[key]
    tensors = params()
    optimizer = cls(tensors, lr=1e-3, **required)
    closure = data.draw(st.one_of(st.just(quadratic(tensors)), ANY_VALUE), label="closure")
    weight = data.draw(ANY_VALUE, label="weight")
    before = snapshot(tensors)
    try:
        optimizer.step(closure, weight=weight)
    except (TypeError, ValueError) as error:
        assert names_the_argument(error, "closure") or names_the_argument(error, "weight"), error
        assert unchanged(tensors, before)
        return
    assert all(torch.isfinite(t).all() for t in tensors)


class ClosureFailed(Exception):
    pass


ODD_RETURNS = {
    "int": lambda loss: int(float(loss) * 100),
    "0-d tensor": lambda loss: loss.reshape(()),
    "1-element tensor": lambda loss: loss.reshape(1),
    "requires grad": lambda loss: loss.detach().requires_grad_(),
    "numpy float": lambda loss: np.float64(float(loss)),
    "nan": lambda loss: float("nan"),
    "inf": lambda loss: torch.tensor(math.inf),
    "None": lambda loss: None,
    "2 elements": lambda loss: torch.stack([loss, loss]),
    "string": lambda loss: "0.5",
    "complex": lambda loss: torch.tensor(1 + 1j),
}


@pytest.mark.parametrize("kind", sorted(ODD_RETURNS))
@settings(FUZZ, max_examples=12)
@given(
    st.sampled_from(sorted(OPTIMIZERS)),
    st.integers(0, 3),
    st.sampled_from(["return", "raise"]),
)
def test_a_closure_returning_odd_things_or_raising_never_corrupts_the_weights(
    kind, key, odd_pass, action
):
    cls, required = OPTIMIZERS[key]
    tensors = params()
    optimizer = cls(tensors, lr=1e-3, **required)
    optimizer.step(quadratic(tensors))  # a step with history first
    calls = []
    loss_of = quadratic(tensors)

    def closure():
        calls.append(1)
        loss = loss_of()
        if len(calls) - 1 == odd_pass:
            if action == "raise":
                raise ClosureFailed("the batch failed")
            return ODD_RETURNS[kind](loss)
        return loss

    before = snapshot(tensors)
    skipped = optimizer.skipped_steps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the skip of a NaN loss warns
            optimizer.step(closure)
    except (ClosureFailed, TypeError, ValueError):
        assert restored(tensors, before)
        return
    if optimizer.skipped_steps > skipped:
        assert restored(tensors, before)
    assert all(torch.isfinite(t).all() for t in tensors)


@FUZZ
@given(
    st.sampled_from(sorted(OPTIMIZERS)),
    st.integers(0, 6),
    st.integers(1, 4),
    st.sampled_from([None, 3]),
)
def test_a_state_dict_round_trip_through_torch_save_continues_bitwise(
    key, before_save, after_save, direction_seeds
):
    cls, required = OPTIMIZERS[key]
    options = dict(lr=1e-2, direction_seeds=direction_seeds, **required)
    tensors = params()
    optimizer = cls(tensors, **options)
    for _ in range(before_save):
        optimizer.step(quadratic(tensors))
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # a saved state needs no pickled code
    copies = [t.detach().clone().requires_grad_() for t in tensors]
    restored = cls(copies, **options)
    restored.load_state_dict(state)
    for _ in range(after_save):
        optimizer.step(quadratic(tensors))
        restored.step(quadratic(copies))
    assert unchanged(copies, snapshot(tensors))
    assert restored.state_dict()["zo"] == optimizer.state_dict()["zo"]


# ---------------------------------------------------------------------------- task files

SST2_ROWS = [f"the film was {w} \t{i % 2}" for i, w in enumerate(["good", "bad", "fine"] * 4)]


@FUZZ
@given(
    line=st.integers(2, len(SST2_ROWS) + 1),
    garbage=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
)
def test_a_corrupted_task_file_loads_or_names_the_file_and_line(tmp_path_factory, line, garbage):
    from adamezo.tasks import MalformedDataError, get_task

    root = tmp_path_factory.mktemp("data")
    lines = ["sentence\tlabel", *SST2_ROWS]
    lines[line - 1] = garbage
    path = root / "sst2" / "train.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        examples = get_task("sst2").read_split("train", root)
    except MalformedDataError as error:
        assert str(error).startswith(f"{path}, line "), error
        return
    assert len(examples) >= len(SST2_ROWS) - 1


@FUZZ
@given(
    line=st.integers(1, 4),
    cut=st.integers(0, 60),
    garbage=st.binary(max_size=12),
)
def test_a_jsonl_task_file_cut_or_garbled_loads_or_names_the_file_and_line(
    tmp_path_factory, line, cut, garbage
):
    import json

    from adamezo.tasks import MalformedDataError, get_task

    rows = [
        {"premise": f"P{i}.", "hypothesis": "H.", "idx": i, "label": "entailment"} for i in range(4)
    ]
    text = [json.dumps(r).encode() for r in rows]
    text[line - 1] = text[line - 1][:cut] + garbage
    root = tmp_path_factory.mktemp("data")
    path = root / "rte" / "train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(text) + b"\n")
    try:
        get_task("rte").read_split("train", root)
    except MalformedDataError as error:
        assert str(error).startswith(f"{path}, line "), error
