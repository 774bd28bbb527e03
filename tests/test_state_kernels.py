"""ZO-Adam's and HiZOO's passes in the kernel layer: the numba kernel equals the plain-torch one bit
for bit, the plain-torch one equals the chunk loops these optimizers used to write themselves,
``kernel=`` is honoured, and the passes check their state buffers.

The former loops are copied below as they were, with one deliberate change: they took torch's CPU
``sqrt``, which is off by one ulp on about 16% of float32 inputs (a fast approximation no other
kernel could match), where every kernel takes the correctly rounded square root.
"""

from __future__ import annotations

import pytest
import torch

import adamezo
from adamezo.kernels import CurvatureUpdate, Kernel, MomentUpdate, TorchKernel
from adamezo.kernels.reference import add_in_compute_dtype, sqrt_rn
from adamezo.noise import normal
from adamezo.rules import bias_correction
from tests.kernel_cases import DTYPES, bases, same_bits, weights
from tests.zo_reference import loss_of, make_params

numba_cpu = pytest.importorskip("adamezo.kernels.numba_cpu")
NumbaKernel = numba_cpu.NumbaKernel

SIZES = [(1, 0), (7, 3), (4099, 5), (70_001, 2)]
MOMENT = MomentUpdate(
    restore=-1e-3,
    grad=2.3,
    beta1=0.9,
    beta2=0.999,
    correction1=bias_correction(0.9, 2),
    correction2=bias_correction(0.999, 2),
    eps=1e-8,
    lr=1e-2,
    weight_decay=0.1,
)
CURVATURE = CurvatureUpdate(
    restore=1e-3, grad=-1.7, curvature=3.1, smoothing=0.3, lr=1e-2, weight_decay=0.1
)


def moments(numel, dtype):
    return weights(numel, dtype, 1) * 0.1, weights(numel, dtype, 2).square().to(dtype) * 0.1


def hessian(numel, dtype):
    return (weights(numel, dtype, 3).abs() + 0.5).to(dtype)


# ------------------------------------------------------------- the former loops, as they were


def former_zo_adam(theta, exp_avg, exp_avg_sq, base, offset, u: MomentUpdate, chunk=1000):
    """ZOAdam._update's loop over one tensor before the kernel layer (sqrt: correctly rounded)."""
    exp_avg, exp_avg_sq = exp_avg.view(-1), exp_avg_sq.view(-1)
    flat = theta.view(-1)
    for start in range(0, flat.numel(), chunk):
        piece = flat[start : start + chunk]
        where = slice(start, start + piece.numel())
        dtype = torch.float64 if theta.dtype == torch.float64 else torch.float32
        z = normal(base, piece.numel(), offset + start).to(dtype)
        theta_ = piece.to(z.dtype, copy=True).add_(z * u.restore)
        grad = z.mul_(u.grad)
        m = exp_avg[where].to(z.dtype, copy=True).mul_(u.beta1).add_(grad * (1.0 - u.beta1))
        v = (
            exp_avg_sq[where]
            .to(z.dtype, copy=True)
            .mul_(u.beta2)
            .add_(grad.square() * (1.0 - u.beta2))
        )
        direction = (m / u.correction1).div_(sqrt_rn(v / u.correction2).add_(u.eps))
        step = direction.add_(theta_ * u.weight_decay).mul_(u.lr)
        exp_avg[where] = m
        exp_avg_sq[where] = v
        piece.copy_(theta_.sub_(step))


def former_hizoo(theta, hess, base, offset, u: CurvatureUpdate, chunk=1000):
    """HiZOO._update's loop over one tensor before the kernel layer (sqrt: correctly rounded)."""
    hess, flat = hess.view(-1), theta.view(-1)
    for start in range(0, flat.numel(), chunk):
        piece = flat[start : start + chunk]
        where = slice(start, start + piece.numel())
        dtype = torch.float64 if theta.dtype == torch.float64 else torch.float32
        z = normal(base, piece.numel(), offset + start).to(dtype)
        h = hess[where].to(z.dtype, copy=True)
        theta_ = piece.to(z.dtype, copy=True).add_(z.div(sqrt_rn(h)).mul_(u.restore))
        estimate = h * z.square() * u.curvature
        h = h.mul_(1.0 - u.smoothing).add_(estimate.mul_(u.smoothing))
        step = z.mul_(u.grad).div_(sqrt_rn(h)).add_(theta_ * u.weight_decay).mul_(u.lr)
        hess[where] = h
        piece.copy_(theta_.sub_(step))


def former_hizoo_shift(theta, hess, base, offset, scale, chunk=1000):
    """HiZOO._shift over one tensor before the kernel layer (sqrt: correctly rounded)."""
    hess, flat = hess.view(-1), theta.view(-1)
    for start in range(0, flat.numel(), chunk):
        piece = flat[start : start + chunk]
        dtype = torch.float64 if theta.dtype == torch.float64 else torch.float32
        z = normal(base, piece.numel(), offset + start).to(dtype)
        h = hess[start : start + piece.numel()]
        add_in_compute_dtype(piece, z.div_(sqrt_rn(h.to(z.dtype))).mul_(scale))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_the_torch_moment_pass_is_the_former_zo_adam_loop(dtype, numel, offset):
    theta, (m, v) = weights(numel, dtype), moments(numel, dtype)
    expected = [theta.clone(), m.clone(), v.clone()]
    former_zo_adam(*expected, bases(1)[0], offset, MOMENT)
    TorchKernel(4096).moment_update(theta, m, v, bases(1)[0], MOMENT, offset)
    assert all(same_bits(a, e) for a, e in zip((theta, m, v), expected, strict=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_the_torch_curvature_passes_are_the_former_hizoo_loops(dtype, numel, offset):
    theta, h = weights(numel, dtype), hessian(numel, dtype)
    expected = [theta.clone(), h.clone()]
    former_hizoo(*expected, bases(1)[0], offset, CURVATURE)
    TorchKernel(4096).curvature_update(theta, h, bases(1)[0], CURVATURE, offset)
    assert all(same_bits(a, e) for a, e in zip((theta, h), expected, strict=True))
    shifted = theta.clone()
    former_hizoo_shift(shifted, h, bases(1)[0], offset, -0.37)
    TorchKernel(4096).add_preconditioned_noise(theta, h, bases(1)[0], -0.37, offset)
    assert same_bits(theta, shifted)


# ------------------------------------------------------------------ numba equals the reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_numba_moment_update_equals_reference(dtype, numel, offset):
    theta, (m, v) = weights(numel, dtype), moments(numel, dtype)
    expected = [theta.clone(), m.clone(), v.clone()]
    expected_sq = TorchKernel(1000).moment_update(*expected, bases(1)[0], MOMENT, offset)
    actual_sq = NumbaKernel().moment_update(theta, m, v, bases(1)[0], MOMENT, offset)
    assert all(same_bits(a, e) for a, e in zip((theta, m, v), expected, strict=True))
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("numel", "offset"), SIZES)
def test_numba_curvature_passes_equal_reference(dtype, numel, offset):
    theta, h = weights(numel, dtype), hessian(numel, dtype)
    copy = NumbaKernel().add_preconditioned_noise(
        theta, h, bases(1)[0], 0.37, offset, out=torch.empty_like(theta)
    )
    expected_copy = TorchKernel(1000).add_preconditioned_noise(
        theta, h, bases(1)[0], 0.37, offset, out=torch.empty_like(theta)
    )
    assert same_bits(copy, expected_copy)
    in_place = theta.clone()
    NumbaKernel().add_preconditioned_noise(in_place, h, bases(1)[0], 0.37, offset)
    assert same_bits(in_place, expected_copy)
    expected = [theta.clone(), h.clone()]
    expected_sq = TorchKernel(1000).curvature_update(*expected, bases(1)[0], CURVATURE, offset)
    actual_sq = NumbaKernel().curvature_update(theta, h, bases(1)[0], CURVATURE, offset)
    assert all(same_bits(a, e) for a, e in zip((theta, h), expected, strict=True))
    assert actual_sq == pytest.approx(expected_sq, rel=1e-12)


# -------------------------------------------------------------------- the optimizers use them


def run(name, kernel, dtype, steps=4):
    params = make_params(dtype=dtype)
    options = {"betas": (0.8, 0.95), "eps": 1e-6} if name == "ZOAdam" else {}
    if name == "HiZOO":
        options = {"hessian_smoothing": 0.3}
    opt = getattr(adamezo, name)(params, lr=1e-2, weight_decay=0.1, kernel=kernel, **options)
    for _ in range(steps):
        opt.step(lambda: loss_of(params))
    return params, opt


@pytest.mark.parametrize("name", ["ZOAdam", "HiZOO"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_zo_adam_and_hizoo_runs_are_bitwise_the_same_on_numba_and_torch(name, dtype):
    torch_params, torch_opt = run(name, "torch", dtype)
    numba_params, numba_opt = run(name, "numba", dtype)
    assert all(same_bits(a, b) for a, b in zip(numba_params, torch_params, strict=True))
    for a, b in zip(numba_params, torch_params, strict=True):
        for key, value in torch_opt.state[b].items():
            assert same_bits(numba_opt.state[a][key], value), key
    assert numba_opt.last_update_norm == pytest.approx(torch_opt.last_update_norm, rel=1e-12)


class Counting(TorchKernel):
    """The reference kernel, counting the passes it is asked for."""

    name = "counting"

    def __init__(self):
        super().__init__(1000)
        self.calls: dict[str, int] = {}

    def _count(self, what):
        self.calls[what] = self.calls.get(what, 0) + 1

    def _add_noise(self, *args):
        self._count("add_noise")
        super()._add_noise(*args)

    def _state_update(self, tensor, states, base, update, offset, dtype):
        self._count(type(update).__name__)
        return super()._state_update(tensor, states, base, update, offset, dtype)

    def _add_preconditioned_noise(self, *args):
        self._count("add_preconditioned_noise")
        super()._add_preconditioned_noise(*args)


@pytest.mark.parametrize("perturbation", ["in_place", "exact"])
def test_the_kernel_argument_reaches_zo_adam_and_hizoo(perturbation):
    params = make_params(dtype=torch.float32)
    zo_adam = Counting()
    opt = adamezo.ZOAdam(params, lr=1e-2, kernel=zo_adam, perturbation=perturbation)
    opt.step(lambda: loss_of(params))
    assert zo_adam.calls["MomentUpdate"] == 2  # one pass per tensor
    hizoo = Counting()
    opt = adamezo.HiZOO(params, lr=1e-2, kernel=hizoo, perturbation=perturbation)
    opt.step(lambda: loss_of(params))
    assert hizoo.calls["CurvatureUpdate"] == 2
    # Two preconditioned moves per tensor: in place, θ → θ + μd → θ − μd (the update restores
    # θ itself); exact, one copy for each of the two passes away from θ.
    assert hizoo.calls["add_preconditioned_noise"] == 4
    assert "add_noise" not in hizoo.calls


class Minimal(Kernel):
    """A kernel with only the required passes: no state passes."""

    name = "minimal"

    def supports(self, tensor):
        return True

    def _add_noise(self, tensor, base, scale, offset, dtype):
        TorchKernel()._add_noise(tensor, base, scale, offset, dtype)

    def _fused_update(self, tensor, bases, update, offset, dtype):
        return TorchKernel()._fused_update(tensor, bases, update, offset, dtype)


@pytest.mark.parametrize("name", ["ZOAdam", "HiZOO"])
def test_a_kernel_without_the_state_passes_fails_the_step_and_leaves_the_weights(name):
    params = make_params(dtype=torch.float32)
    before = [p.detach().clone() for p in params]
    opt = getattr(adamezo, name)(params, lr=1e-2, kernel=Minimal(), perturbation="exact")
    with pytest.raises(NotImplementedError, match="the minimal kernel has no"):
        opt.step(lambda: loss_of(params))
    assert all(same_bits(p, b) for p, b in zip(params, before, strict=True))
    assert opt.state_dict()["zo"]["steps"] == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda k, t: k.moment_update(t, t[:-1].clone(), t.clone(), 1, MOMENT),
            "exp_avg must be a contiguous torch.float32 tensor of shape \\(8,\\)",
        ),
        (
            lambda k, t: k.moment_update(t, t.clone(), t.double(), 1, MOMENT),
            "exp_avg_sq must be a contiguous torch.float32",
        ),
        (
            lambda k, t: k.curvature_update(t, t.reshape(2, 4).clone(), 1, CURVATURE),
            "hessian must be a contiguous",
        ),
        (
            lambda k, t: k.add_preconditioned_noise(t, t.clone(), 1, 0.1, out=t.half()),
            "out must be a contiguous torch.float32",
        ),
        (lambda k, t: k.curvature_update(t, t.clone(), -1, CURVATURE), "base must be in"),
    ],
)
@pytest.mark.parametrize("kernel", [TorchKernel(), NumbaKernel()], ids=lambda k: k.name)
def test_the_state_passes_check_their_buffers_before_writing(kernel, call, match):
    tensor = torch.arange(8, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        call(kernel, tensor)
    assert torch.equal(tensor, torch.arange(8, dtype=torch.float32))
