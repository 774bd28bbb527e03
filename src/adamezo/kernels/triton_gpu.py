"""The GPU kernel: Triton programs that regenerate z on the fly and touch θ once per pass.

Each program covers ``BLOCK`` consecutive elements, aligned so that it starts on a hash word:
it hashes its ``BLOCK / 4`` words once, expands every word into its four table indices, and
looks the normals up in the 16 KiB table (which stays in L1/L2). AdaMeZO's update loops over the
K streams inside the program, keeping m and v in registers, and writes θ once.

Bitwise agreement with the other kernels: launches pass ``enable_fp_fusion=False`` (Triton would
otherwise contract a·b + c into an FMA), the square root and the division are ``sqrt_rn`` and
``div_rn`` (Triton's default ``sqrt`` and ``/`` on float32 are approximate), conversions to
bfloat16/float16 round to nearest even, and every coefficient travels in a tensor of the compute
dtype (Triton would pass a Python float as float32). Σ(Δθ)² is one partial sum per program,
added on the device in a fixed order, so it is deterministic; it stays on the device until the
step's end, so a step makes the host wait for the GPU once, not once per tensor.

Under ``TRITON_INTERPRET=1`` (set before this module is imported) the same programs run on CPU
tensors through Triton's interpreter, which is how the test suite checks them without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from adamezo.kernels.base import FusedUpdate, Kernel, MomentUpdate, StateUpdate, is_dense
from adamezo.noise import (
    GAMMA,
    LANE_BITS,
    LANE_SHIFT,
    LANES,
    MIX1,
    MIX2,
    TABLE_SIZE,
    normal_table,
    sign_table,
)
from adamezo.noise import signed64 as _signed

try:
    import triton
    import triton.language as tl
except ImportError as error:
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
"""Whether Triton runs its programs through the CPU interpreter (set before import)."""

BLOCK = 2048
"""Elements per program (a multiple of 4, so that programs start on a hash word)."""

_SCALARS = 5
"""restore, gain, eps, lr, weight_decay: the first entries of the coefficient tensor."""

_COEFS_KEPT = 16
"""Coefficient tensors kept on the device for reuse (a step needs one per param group and pass)."""

if _IMPORT_ERROR is None:
    # Triton reads module globals only as constexprs.
    MIX1_C = tl.constexpr(MIX1)
    MIX2_C = tl.constexpr(MIX2)
    GAMMA_C = tl.constexpr(GAMMA)
    LANE_BITS_C = tl.constexpr(LANE_BITS)
    LANE_SHIFT_C = tl.constexpr(LANE_SHIFT)
    TABLE_MASK_C = tl.constexpr(TABLE_SIZE - 1)
    BF16_C = tl.constexpr(1)
    F16_C = tl.constexpr(2)

    @triton.jit
    def _mix64(x):
        x = (x ^ (x >> 30)) * MIX1_C
        x = (x ^ (x >> 27)) * MIX2_C
        return x ^ (x >> 31)

    @triton.jit
    def _lane(table, words, LANE: tl.constexpr):
        """z of lane ``LANE`` (element 4q + LANE) of each hash word q."""
        shift: tl.constexpr = LANE * LANE_BITS_C + LANE_SHIFT_C
        return tl.load(table + ((words >> shift) & TABLE_MASK_C).to(tl.int32))

    @triton.jit
    def _noise(table, base, first_word, WORDS: tl.constexpr):
        """z of the 4·WORDS elements from hash word ``first_word`` on, as float32 [4·WORDS].

        Each word is hashed once, as a [WORDS] tensor, and its four lanes are joined after the
        table look-up: broadcasting the words to [WORDS, 4] instead lets the compiler give each
        lane its own copy of the hash, four times the 64-bit multiplies."""
        q = first_word + tl.arange(0, WORDS).to(tl.uint64)
        words = _mix64(base + q * GAMMA_C)
        low = tl.join(_lane(table, words, 0), _lane(table, words, 2))  # [q, i // 2]
        high = tl.join(_lane(table, words, 1), _lane(table, words, 3))
        return tl.reshape(tl.join(low, high), [4 * WORDS])  # [q, i // 2, i % 2] -> 4q + i

    @triton.jit
    def _positions(offset, n, BLOCK: tl.constexpr):
        """(first hash word, local element indices, mask) of this program's aligned block."""
        aligned = offset - offset % 4
        start = aligned + tl.program_id(0).to(tl.int64) * BLOCK
        local = start - offset + tl.arange(0, BLOCK)
        return (start // 4).to(tl.uint64), local, (local >= 0) & (local < n)

    @triton.jit
    def _load(theta, local, mask, HALF: tl.constexpr):
        """θ at ``local``. 16-bit floats arrive as int16 bits (see ``_flat``): bfloat16 is widened
        exactly to float32 by hand, float16 is reinterpreted."""
        if HALF == BF16_C:
            bits = tl.load(theta + local, mask=mask).to(tl.uint16, bitcast=True).to(tl.uint32)
            return (bits << 16).to(tl.float32, bitcast=True)
        elif HALF == F16_C:
            return tl.load(theta + local, mask=mask).to(tl.float16, bitcast=True)
        else:
            return tl.load(theta + local, mask=mask)

    @triton.jit
    def _store(theta, local, mask, value, HALF: tl.constexpr):
        """θ ← value rounded to nearest even. bfloat16 is rounded by hand: the interpreter's
        float32 → bfloat16 cast truncates, and both paths must give the same bits. A 16-bit NaN
        is stored as the canonical quiet NaN (0x7FC0, 0x7E00), as the other kernels store it:
        the GPU's own conversions would leave 0x7FFF."""
        if HALF == BF16_C:
            bits = value.to(tl.uint32, bitcast=True)
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            rounded = tl.where(value != value, 0x7FC0, rounded)
            tl.store(theta + local, rounded.to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
        elif HALF == F16_C:
            bits = value.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32)
            tl.store(theta + local, tl.where(value != value, 0x7E00, bits).to(tl.int16), mask=mask)
        else:
            tl.store(theta + local, value.to(theta.dtype.element_ty), mask=mask)

    @triton.jit
    def _base(high, low):
        """The 64-bit base from its 32-bit halves, passed as int32: Triton types a Python int by
        its value, and its interpreter mistypes those in [2³¹, 2³²)."""
        high64 = high.to(tl.uint32, bitcast=True).to(tl.uint64) << 32
        return high64 | low.to(tl.uint32, bitcast=True).to(tl.uint64)

    @triton.jit
    def _as_uint64(value):
        """A 64-bit pattern loaded as int64."""
        return value.to(tl.uint64, bitcast=True)

    @triton.jit(do_not_specialize=["high", "low"])
    def _add_noise_kernel(
        theta, table, high, low, coefs, offset, n, HALF: tl.constexpr, BLOCK: tl.constexpr
    ):
        first_word, local, mask = _positions(offset, n, BLOCK)
        scale = tl.load(coefs)
        z = _noise(table, _base(high, low), first_word, BLOCK // 4)
        x = _load(theta, local, mask, HALF).to(scale.dtype)
        _store(theta, local, mask, x + z.to(scale.dtype) * scale, HALF)

    @triton.jit
    def _fused_update_kernel(
        theta,
        table,
        bases,
        coefs,
        partials,
        offset,
        n,
        STREAMS: tl.constexpr,
        USE_V: tl.constexpr,
        F64: tl.constexpr,
        HALF: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        first_word, local, mask = _positions(offset, n, BLOCK)
        restore = tl.load(coefs)
        gain = tl.load(coefs + 1)
        eps = tl.load(coefs + 2)
        lr = tl.load(coefs + 3)
        wd = tl.load(coefs + 4)
        x = _load(theta, local, mask, HALF)
        zero = tl.zeros([BLOCK], dtype=restore.dtype)
        z = _noise(table, _as_uint64(tl.load(bases)), first_word, BLOCK // 4)
        z = z.to(restore.dtype)
        t = x.to(restore.dtype) + z * restore
        m = zero + z * tl.load(coefs + 5)
        v = zero
        if USE_V:
            v = zero + (z * z) * tl.load(coefs + 5 + STREAMS)
        for k in range(1, STREAMS):
            base = _as_uint64(tl.load(bases + k))
            z = _noise(table, base, first_word, BLOCK // 4).to(restore.dtype)
            m = m + z * tl.load(coefs + 5 + k)
            if USE_V:
                v = v + (z * z) * tl.load(coefs + 5 + STREAMS + k)
        u = m * gain
        if USE_V:
            # sqrt_rn/div_rn take float32 only; float64 sqrt and division are always IEEE.
            if F64:  # noqa: SIM108 (a constexpr branch: only one side may be compiled)
                u = u / (tl.sqrt(v) + eps)
            else:
                u = tl.div_rn(u, tl.sqrt_rn(v) + eps)
        _write_step(theta, local, mask, t, u, lr, wd, partials, HALF)

    @triton.jit
    def _write_step(theta, local, mask, t, u, lr, wd, partials, HALF: tl.constexpr):
        """θ ← round(t − (t·wd + u)·lr); this program's Σ(θ' − t)² into ``partials``."""
        new = t - (t * wd + u) * lr
        _store(theta, local, mask, new, HALF)
        delta = tl.where(mask, (new - t).to(tl.float64), 0.0)
        tl.store(partials + tl.program_id(0), tl.sum(delta * delta, axis=0))

    @triton.jit
    def _sqrt(x, F64: tl.constexpr):
        """The correctly rounded square root (Triton's float32 ``sqrt`` is approximate)."""
        if F64:
            return tl.sqrt(x)
        else:
            return tl.sqrt_rn(x)

    @triton.jit
    def _div(a, b, F64: tl.constexpr):
        """The correctly rounded quotient (Triton's float32 ``/`` is approximate)."""
        if F64:
            return a / b
        else:
            return tl.div_rn(a, b)

    @triton.jit(do_not_specialize=["high", "low"])
    def _state_update_kernel(
        theta,
        first,
        second,
        table,
        high,
        low,
        coefs,
        partials,
        offset,
        n,
        MOMENTS: tl.constexpr,
        F64: tl.constexpr,
        HALF: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """ZO-Adam's update (MOMENTS: ``first`` = m, ``second`` = v, kernels.base.MomentUpdate)
        or HiZOO's (``first`` = H, kernels.base.CurvatureUpdate)."""
        first_word, local, mask = _positions(offset, n, BLOCK)
        restore = tl.load(coefs)
        z = _noise(table, _base(high, low), first_word, BLOCK // 4).to(restore.dtype)
        x = _load(theta, local, mask, HALF).to(restore.dtype)
        # Lanes past the tensor read 0: 1 keeps their (unstored) z/√h finite.
        s = tl.where(mask, _load(first, local, mask, HALF).to(restore.dtype), 1.0)
        if MOMENTS:
            t = x + z * restore
            g = z * tl.load(coefs + 1)
            m = s * tl.load(coefs + 2) + g * tl.load(coefs + 3)
            v = _load(second, local, mask, HALF).to(restore.dtype) * tl.load(coefs + 4)
            v = v + (g * g) * tl.load(coefs + 5)
            _store(second, local, mask, v, HALF)
            s = m
            v_hat = _div(v, tl.load(coefs + 7), F64)
            u = _div(_div(m, tl.load(coefs + 6), F64), _sqrt(v_hat, F64) + tl.load(coefs + 8), F64)
            lr, wd = tl.load(coefs + 9), tl.load(coefs + 10)
        else:
            t = x + _div(z, _sqrt(s, F64), F64) * restore
            s = s * tl.load(coefs + 3) + ((s * (z * z)) * tl.load(coefs + 2)) * tl.load(coefs + 4)
            u = _div(z * tl.load(coefs + 1), _sqrt(s, F64), F64)
            lr, wd = tl.load(coefs + 5), tl.load(coefs + 6)
        _store(first, local, mask, s, HALF)
        _write_step(theta, local, mask, t, u, lr, wd, partials, HALF)

    @triton.jit(do_not_specialize=["high", "low"])
    def _preconditioned_noise_kernel(
        out,
        theta,
        hessian,
        table,
        high,
        low,
        coefs,
        offset,
        n,
        F64: tl.constexpr,
        HALF: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        first_word, local, mask = _positions(offset, n, BLOCK)
        scale = tl.load(coefs)
        z = _noise(table, _base(high, low), first_word, BLOCK // 4).to(scale.dtype)
        h = tl.where(mask, _load(hessian, local, mask, HALF).to(scale.dtype), 1.0)
        x = _load(theta, local, mask, HALF).to(scale.dtype)
        _store(out, local, mask, x + _div(z, _sqrt(h, F64), F64) * scale, HALF)

    @triton.jit(do_not_specialize=["high", "low"])
    def _noise_sq_kernel(table, high, low, partials, offset, n, BLOCK: tl.constexpr):
        first_word, _, mask = _positions(offset, n, BLOCK)
        z = _noise(table, _base(high, low), first_word, BLOCK // 4)
        z = tl.where(mask, z.to(tl.float64), 0.0)
        tl.store(partials + tl.program_id(0), tl.sum(z * z, axis=0))


def _programs(numel: int, offset: int) -> int:
    return -(-(numel + offset % LANES) // BLOCK)


_HALF = {torch.bfloat16: 1, torch.float16: 2}
"""The programs' ``HALF`` flag: 16-bit floats travel as int16 bits (see ``_store``)."""


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    """The flat storage the programs write: 16-bit floats as their int16 bits."""
    flat = tensor.detach().view(-1)
    return flat.view(torch.int16) if flat.dtype in _HALF else flat


def _halves(base: int) -> tuple[int, int]:
    """A uint64 base as two int32 scalars (high, low) holding its bits (see ``_base``)."""
    return _int32(base >> 32), _int32(base & 0xFFFFFFFF)


def _int32(bits: int) -> int:
    return bits - (1 << 32) if bits >= 1 << 31 else bits


def _launch_options() -> dict:
    return {} if INTERPRETED else {"enable_fp_fusion": False}


def _on(device: torch.device) -> AbstractContextManager:
    """Launch on ``device``, not on whichever CUDA device is current (Triton launches there)."""
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


def _to_device(values: Sequence[float], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``values`` rounded to ``dtype`` once on the host (floats from float64, as the reference
    rounds them) and copied to ``device`` without waiting: a pageable host-to-device copy makes
    the host wait for the GPU, a copy from pinned memory does not."""
    wide = torch.float64 if dtype.is_floating_point else dtype
    host = torch.tensor(values, dtype=wide).to(dtype)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _launch_summed(
    program: Any, tensor: torch.Tensor, offset: int, args: tuple, **flags: Any
) -> torch.Tensor:
    """Launch an update ``program(θ, *args, partials, offset, n, **flags, HALF, BLOCK)`` over
    ``tensor``; the sum of its per-program partials, left on the device (read once per step,
    :class:`~adamezo.kernels.base.DeferredSum`)."""
    n = tensor.numel()
    programs = _programs(n, offset)
    partials = torch.empty(programs, dtype=torch.float64, device=tensor.device)
    with _on(tensor.device):
        program[(programs,)](
            _flat(tensor),
            *args,
            partials,
            offset,
            n,
            **flags,
            HALF=_HALF.get(tensor.dtype, 0),
            BLOCK=BLOCK,
            **_launch_options(),
        )
        return partials.sum()


class TritonKernel(Kernel):
    """Triton passes for CUDA tensors (CPU tensors too under ``TRITON_INTERPRET=1``).

    Nothing here makes the host wait for the GPU: coefficients reach the device from pinned
    memory, the last few coefficient tensors are reused (every tensor of a param group shares
    them within a step), and :meth:`fused_update_deferred` leaves Σ(Δθ)² on the device.
    """

    name = "triton"
    table_of = staticmethod(normal_table)
    """The 4096-entry table the 12-bit indices read: normal quantiles (Rademacher: signs)."""

    def __init__(self, chunk_size: int | None = None) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(f"the triton kernel needs triton: {_IMPORT_ERROR}") from _IMPORT_ERROR
        self.chunk_size = chunk_size
        self._coefs: dict[tuple, torch.Tensor] = {}

    def supports(self, tensor: torch.Tensor) -> bool:
        return is_dense(tensor, "cuda") or (INTERPRETED and is_dense(tensor, "cpu"))

    def _table(self, device: torch.device) -> torch.Tensor:
        return self.table_of(device)

    def _coefficients(
        self, values: tuple[float, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """``values`` as a device tensor of the compute dtype, copied once per distinct set."""
        key = (tuple(float(v).hex() for v in values), dtype, device)  # bits: -0.0 is not 0.0
        coefs = self._coefs.get(key)
        if coefs is None:
            if len(self._coefs) >= _COEFS_KEPT:
                del self._coefs[next(iter(self._coefs))]  # the oldest
            coefs = self._coefs[key] = _to_device(values, dtype, device)
        return coefs

    def _add_noise(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> None:
        n = tensor.numel()
        if n == 0:
            return
        coefs = self._coefficients((scale,), dtype, tensor.device)
        with _on(tensor.device):
            _add_noise_kernel[(_programs(n, offset),)](
                _flat(tensor),
                self._table(tensor.device),
                *_halves(base),
                coefs,
                offset,
                n,
                HALF=_HALF.get(tensor.dtype, 0),
                BLOCK=BLOCK,
                **_launch_options(),
            )

    def _fused_update(
        self,
        tensor: torch.Tensor,
        bases: Sequence[int],
        update: FusedUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float | torch.Tensor:
        signed = [_signed(b) for b in bases]
        if tensor.numel() == 0:
            return 0.0
        scalars = (update.restore, update.gain, update.eps, update.lr, update.weight_decay)
        coefs = self._coefficients(
            scalars + update.m_coefs + (update.v_coefs or ()), dtype, tensor.device
        )
        stream_bases = _to_device(signed, torch.int64, tensor.device)
        return _launch_summed(
            _fused_update_kernel,
            tensor,
            offset,
            (self._table(tensor.device), stream_bases, coefs),
            STREAMS=len(signed),
            USE_V=update.v_coefs is not None,
            F64=dtype == torch.float64,
        )

    def _state_update(
        self,
        tensor: torch.Tensor,
        states: tuple[torch.Tensor, ...],
        base: int,
        update: StateUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float | torch.Tensor:
        if tensor.numel() == 0:
            return 0.0
        coefs = self._coefficients(update.coefficients(), dtype, tensor.device)
        args = (_flat(states[0]), _flat(states[-1]), self._table(tensor.device), *_halves(base))
        return _launch_summed(
            _state_update_kernel,
            tensor,
            offset,
            (*args, coefs),
            MOMENTS=isinstance(update, MomentUpdate),
            F64=dtype == torch.float64,
        )

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
        n = tensor.numel()
        if n == 0:
            return
        coefs = self._coefficients((scale,), dtype, tensor.device)
        with _on(tensor.device):
            _preconditioned_noise_kernel[(_programs(n, offset),)](
                _flat(out),
                _flat(tensor),
                _flat(hessian),
                self._table(tensor.device),
                *_halves(base),
                coefs,
                offset,
                n,
                F64=dtype == torch.float64,
                HALF=_HALF.get(tensor.dtype, 0),
                BLOCK=BLOCK,
                **_launch_options(),
            )

    def _noise_sq_sum(self, tensor: torch.Tensor, base: int, offset: int) -> float:
        n = tensor.numel()
        if n == 0:
            return 0.0
        programs = _programs(n, offset)
        partials = torch.empty(programs, dtype=torch.float64, device=tensor.device)
        with _on(tensor.device):
            _noise_sq_kernel[(programs,)](
                self._table(tensor.device), *_halves(base), partials, offset, n, BLOCK=BLOCK
            )
        return float(partials.sum())


class TritonRademacherKernel(TritonKernel):
    """The Triton passes along Rademacher directions: the same programs reading the sign table
    (r = sign(z), :func:`adamezo.noise.rademacher`); bitwise equal to the plain-torch
    :class:`~adamezo.kernels.reference.RademacherKernel`."""

    name = "triton-rademacher"
    table_of = staticmethod(sign_table)
