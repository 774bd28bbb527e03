"""The plain-torch kernels: chunked, run on any device and dtype; they define the expected values.

:class:`TorchKernel` draws Gaussian noise (:func:`adamezo.noise.normal`); :class:`RademacherKernel`
is the same passes over Rademacher signs (:func:`adamezo.noise.rademacher`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from adamezo.kernels.base import FusedUpdate, Kernel, MomentUpdate, StateUpdate
from adamezo.noise import normal, rademacher

DEFAULT_CHUNK_SIZE = 1 << 20


def round_scalar(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` once, returned as the Python float of the same value."""
    return torch.tensor(value, dtype=torch.float64).to(dtype).item()


CANONICAL_NAN = {torch.bfloat16: 0x7FC0, torch.float16: 0x7E00}
"""The bits every kernel stores for a NaN in a 16-bit float tensor."""


def store_rounded(chunk: torch.Tensor, value: torch.Tensor) -> None:
    """chunk ← value rounded once to ``chunk``'s dtype, a 16-bit NaN stored as
    :data:`CANONICAL_NAN` whatever payload the device's conversion leaves (CPU torch's vectorised
    float32 → bfloat16 gives 0xFFFF, CUDA's 0x7FFF)."""
    chunk.copy_(value)
    bits = CANONICAL_NAN.get(chunk.dtype)
    if bits is not None and chunk.dtype != value.dtype:
        chunk.view(torch.int16).masked_fill_(torch.isnan(value), bits)


def add_in_compute_dtype(chunk: torch.Tensor, delta: torch.Tensor) -> None:
    """chunk ← chunk + delta, computed in ``delta``'s dtype and rounded once to ``chunk``'s."""
    if chunk.dtype == delta.dtype:
        chunk.add_(delta)
    else:
        store_rounded(chunk, chunk.to(delta.dtype).add_(delta))


def sqrt_rn(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root of ``x`` (a new tensor of ``x``'s dtype).

    torch's own CPU ``sqrt`` is off by one ulp on about 17% of float32 and 1% of float64 inputs
    (measured with torch 2.13; it is a fast approximation), which the compiled and GPU kernels
    could never match. float32 goes through float64: sqrt's double rounding is innocuous when the
    wider format has at least 2p + 2 bits, and an error of one float64 ulp stays far inside the
    float32 rounding margin. float64 on the CPU uses numpy's IEEE sqrt; CUDA's sqrt is IEEE.
    """
    if x.dtype == torch.float64:
        if x.device.type == "cpu":
            return torch.from_numpy(np.sqrt(x.numpy()))
        return torch.sqrt(x)
    return torch.sqrt(x.double()).to(x.dtype)


def iter_chunks(tensor: torch.Tensor, chunk_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, view) over a contiguous tensor's elements, ``chunk_size`` at a time."""
    flat = tensor.view(-1)
    for start in range(0, flat.numel(), chunk_size):
        yield start, flat[start : start + chunk_size]


class TorchKernel(Kernel):
    """Processes a tensor ``chunk_size`` elements at a time, so its working memory stays bounded:
    about 16 bytes per chunk element for the noise, plus a few compute-dtype chunk buffers."""

    name = "torch"
    noise = staticmethod(normal)
    """The stream: (base, count, offset, device) -> float32 values."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise TypeError(f"chunk_size must be an int >= 1, got {type(chunk_size).__name__}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size}")
        self.chunk_size = chunk_size

    def supports(self, tensor: torch.Tensor) -> bool:
        return (
            tensor.is_floating_point() and tensor.is_contiguous() and tensor.layout == torch.strided
        )

    def _chunks(self, tensor: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        return iter_chunks(tensor, self.chunk_size)

    def _add_noise(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> None:
        scale = round_scalar(scale, dtype)
        for start, chunk in self._chunks(tensor):
            step = self.noise(base, chunk.numel(), offset + start, chunk.device)
            step = step.to(dtype).mul_(scale)
            add_in_compute_dtype(chunk, step)

    def _fused_update(
        self,
        tensor: torch.Tensor,
        bases: Sequence[int],
        update: FusedUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float:
        restore = round_scalar(update.restore, dtype)
        m_coefs = [round_scalar(c, dtype) for c in update.m_coefs]
        v_coefs = (
            None if update.v_coefs is None else [round_scalar(c, dtype) for c in update.v_coefs]
        )
        gain, eps = round_scalar(update.gain, dtype), round_scalar(update.eps, dtype)
        lr, weight_decay = round_scalar(update.lr, dtype), round_scalar(update.weight_decay, dtype)

        sq_sum = 0.0
        for start, chunk in self._chunks(tensor):
            n, at = chunk.numel(), offset + start
            t = chunk.to(dtype, copy=True)
            m = torch.zeros_like(t)
            v = None if v_coefs is None else torch.zeros_like(t)
            for k, base in enumerate(bases):
                z = self.noise(base, n, at, chunk.device).to(dtype)
                if k == 0:
                    t.add_(z * restore)
                m.add_(z * m_coefs[k])
                if v is not None:
                    v.add_(z.mul_(z).mul_(v_coefs[k]))
            u = m.mul_(gain)
            if v is not None:
                u.div_(sqrt_rn(v).add_(eps))
            sq_sum += _write_step(chunk, t, u, lr, weight_decay)
        return sq_sum

    def _state_chunks(
        self, tensor: torch.Tensor, base: int, offset: int, dtype: torch.dtype, *states
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]]:
        """(θ chunk, z in the compute dtype, the same chunk of each state) chunk by chunk."""
        flats = [state.view(-1) for state in states]
        for start, chunk in self._chunks(tensor):
            n = chunk.numel()
            z = self.noise(base, n, offset + start, chunk.device).to(dtype)
            yield chunk, z, [flat[start : start + n] for flat in flats]

    def _state_update(
        self,
        tensor: torch.Tensor,
        states: tuple[torch.Tensor, ...],
        base: int,
        update: StateUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float:
        coefs = [round_scalar(c, dtype) for c in update.coefficients()]
        rule = _moment_rule if isinstance(update, MomentUpdate) else _curvature_rule
        sq_sum = 0.0
        for chunk, z, state_chunks in self._state_chunks(tensor, base, offset, dtype, *states):
            t, u, new_states = rule(chunk.to(dtype, copy=True), z, state_chunks, coefs, dtype)
            sq_sum += _write_step(chunk, t, u, lr=coefs[-2], weight_decay=coefs[-1])
            for state_chunk, value in zip(state_chunks, new_states, strict=True):
                store_rounded(state_chunk, value)
        return sq_sum

    def _add_preconditioned_noise(
        self,
        out: torch.Tensor,
        tensor: torch.Tensor,
        hessian: torch.Tensor,
        base: int,
        scale: float,
        offset: int,
        dtype: torch.dtype,
    ) -> None:
        scale = round_scalar(scale, dtype)
        chunks = self._state_chunks(tensor, base, offset, dtype, hessian, out)
        for chunk, z, (h_chunk, out_chunk) in chunks:
            delta = z.div_(sqrt_rn(h_chunk.to(dtype))).mul_(scale)
            store_rounded(out_chunk, chunk.to(dtype).add(delta))


def _moment_rule(
    theta: torch.Tensor,
    z: torch.Tensor,
    states: list[torch.Tensor],
    coefs: list[float],
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(t, u, (m', v')) of :class:`MomentUpdate` for one chunk (θ a compute-dtype copy)."""
    restore, grad, beta1, keep1, beta2, keep2, correction1, correction2, eps = coefs[:9]
    t = theta.add_(z * restore)
    g = z.mul_(grad)
    m = states[0].to(dtype, copy=True).mul_(beta1).add_(g * keep1)
    v = states[1].to(dtype, copy=True).mul_(beta2).add_(g.mul_(g).mul_(keep2))
    return t, (m / correction1).div_(sqrt_rn(v / correction2).add_(eps)), (m, v)


def _curvature_rule(
    theta: torch.Tensor,
    z: torch.Tensor,
    states: list[torch.Tensor],
    coefs: list[float],
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(t, u, (H',)) of :class:`CurvatureUpdate` for one chunk (θ a compute-dtype copy)."""
    restore, grad, curvature, keep, smoothing = coefs[:5]
    h = states[0].to(dtype, copy=True)
    t = theta.add_(z.div(sqrt_rn(h)).mul_(restore))
    estimate = (h * (z * z)).mul_(curvature)
    h = h.mul_(keep).add_(estimate.mul_(smoothing))
    return t, z.mul_(grad).div_(sqrt_rn(h)), (h,)


def _write_step(
    chunk: torch.Tensor, t: torch.Tensor, u: torch.Tensor, lr: float, weight_decay: float
) -> float:
    """chunk ← round(t − (t·weight_decay + u)·lr); returns Σ(θ' − t)² (θ' before rounding)."""
    step = t * weight_decay
    step.add_(u).mul_(lr)
    new = t.sub(step)
    store_rounded(chunk, new)
    return float(new.sub(t).double().square().sum())


class RademacherKernel(TorchKernel):
    """The passes of :class:`TorchKernel` along Rademacher directions (±1 per element), in the
    same operation order; the directions of FZOO (docs/algorithms.md)."""

    name = "rademacher"
    noise = staticmethod(rademacher)

    def _noise_sq_sum(self, tensor: torch.Tensor, base: int, offset: int) -> float:
        return float(tensor.numel())  # every r² is 1
