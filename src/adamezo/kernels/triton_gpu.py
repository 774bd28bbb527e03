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
added on the device in a fixed order, so it is deterministic.

Under ``TRITON_INTERPRET=1`` (set before this module is imported) the same programs run on CPU
tensors through Triton's interpreter, which is how the test suite checks them without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from adamezo.kernels.base import FusedUpdate, Kernel, is_dense
from adamezo.noise import (
    GAMMA,
    LANE_BITS,
    LANE_SHIFT,
    LANES,
    MIX1,
    MIX2,
    TABLE_SIZE,
    normal_table,
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

if _IMPORT_ERROR is None:
    # Triton reads module globals only as constexprs.
    MIX1_C = tl.constexpr(MIX1)
    MIX2_C = tl.constexpr(MIX2)
    GAMMA_C = tl.constexpr(GAMMA)
    LANE_BITS_C = tl.constexpr(LANE_BITS)
    LANE_SHIFT_C = tl.constexpr(LANE_SHIFT)
    TABLE_MASK_C = tl.constexpr(TABLE_SIZE - 1)

    @triton.jit
    def _mix64(x):
        x = (x ^ (x >> 30)) * MIX1_C
        x = (x ^ (x >> 27)) * MIX2_C
        return x ^ (x >> 31)

    @triton.jit
    def _noise(table, base, first_word, WORDS: tl.constexpr):
        """z of the 4·WORDS elements from hash word ``first_word`` on, as float32 [4·WORDS]."""
        q = first_word + tl.arange(0, WORDS).to(tl.uint64)
        words = _mix64(base + q * GAMMA_C)
        shifts = tl.arange(0, 4).to(tl.uint64) * LANE_BITS_C + LANE_SHIFT_C
        indices = (words[:, None] >> shifts[None, :]) & TABLE_MASK_C
        return tl.load(table + tl.reshape(indices, [4 * WORDS]).to(tl.int32))

    @triton.jit
    def _positions(offset, n, BLOCK: tl.constexpr):
        """(first hash word, local element indices, mask) of this program's aligned block."""
        aligned = offset - offset % 4
        start = aligned + tl.program_id(0).to(tl.int64) * BLOCK
        local = start - offset + tl.arange(0, BLOCK)
        return (start // 4).to(tl.uint64), local, (local >= 0) & (local < n)

    @triton.jit
    def _load(theta, local, mask, BF16: tl.constexpr):
        """θ at ``local``; bfloat16 arrives as int16 bits and is widened exactly to float32."""
        if BF16:
            bits = tl.load(theta + local, mask=mask).to(tl.uint16, bitcast=True).to(tl.uint32)
            return (bits << 16).to(tl.float32, bitcast=True)
        else:
            return tl.load(theta + local, mask=mask)

    @triton.jit
    def _store(theta, local, mask, value, BF16: tl.constexpr):
        """θ ← value rounded to nearest even. bfloat16 is rounded by hand: the interpreter's
        float32 → bfloat16 cast truncates, and both paths must give the same bits."""
        if BF16:
            bits = value.to(tl.uint32, bitcast=True)
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            rounded = tl.where(value != value, 0x7FC0, rounded)
            tl.store(theta + local, rounded.to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
        else:
            tl.store(theta + local, value.to(theta.dtype.element_ty), mask=mask)

    @triton.jit
    def _as_uint64(value):
        """A 64-bit pattern passed as a signed int (Triton may type small ones as int32)."""
        return value.to(tl.int64).to(tl.uint64, bitcast=True)

    @triton.jit(do_not_specialize=["base"])
    def _add_noise_kernel(
        theta, table, base, coefs, offset, n, BF16: tl.constexpr, BLOCK: tl.constexpr
    ):
        first_word, local, mask = _positions(offset, n, BLOCK)
        scale = tl.load(coefs)
        z = _noise(table, _as_uint64(base), first_word, BLOCK // 4)
        x = _load(theta, local, mask, BF16).to(scale.dtype)
        _store(theta, local, mask, x + z.to(scale.dtype) * scale, BF16)

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
        BF16: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        first_word, local, mask = _positions(offset, n, BLOCK)
        restore = tl.load(coefs)
        gain = tl.load(coefs + 1)
        eps = tl.load(coefs + 2)
        lr = tl.load(coefs + 3)
        wd = tl.load(coefs + 4)
        x = _load(theta, local, mask, BF16)
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
        new = t - (t * wd + u) * lr
        _store(theta, local, mask, new, BF16)
        delta = tl.where(mask, (new - t).to(tl.float64), 0.0)
        tl.store(partials + tl.program_id(0), tl.sum(delta * delta, axis=0))

    @triton.jit(do_not_specialize=["base"])
    def _noise_sq_kernel(table, base, partials, offset, n, BLOCK: tl.constexpr):
        first_word, _, mask = _positions(offset, n, BLOCK)
        z = _noise(table, _as_uint64(base), first_word, BLOCK // 4)
        z = tl.where(mask, z.to(tl.float64), 0.0)
        tl.store(partials + tl.program_id(0), tl.sum(z * z, axis=0))


def _programs(numel: int, offset: int) -> int:
    return -(-(numel + offset % LANES) // BLOCK)


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    """The flat storage the programs write: bfloat16 as its int16 bits (see ``_store``)."""
    flat = tensor.detach().view(-1)
    return flat.view(torch.int16) if flat.dtype == torch.bfloat16 else flat


def _launch_options() -> dict:
    return {} if INTERPRETED else {"enable_fp_fusion": False}


class TritonKernel(Kernel):
    """Triton passes for CUDA tensors (CPU tensors too under ``TRITON_INTERPRET=1``)."""

    name = "triton"

    def __init__(self, chunk_size: int | None = None) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(f"the triton kernel needs triton: {_IMPORT_ERROR}") from _IMPORT_ERROR
        self.chunk_size = chunk_size

    def supports(self, tensor: torch.Tensor) -> bool:
        return is_dense(tensor, "cuda") or (INTERPRETED and is_dense(tensor, "cpu"))

    def _add_noise(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> None:
        base = _signed(base)
        n = tensor.numel()
        if n == 0:
            return
        coefs = torch.tensor([scale], dtype=torch.float64).to(dtype).to(tensor.device)
        _add_noise_kernel[(_programs(n, offset),)](
            _flat(tensor),
            normal_table(tensor.device),
            base,
            coefs,
            offset,
            n,
            BF16=tensor.dtype == torch.bfloat16,
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
    ) -> float:
        signed = [_signed(b) for b in bases]
        n = tensor.numel()
        if n == 0:
            return 0.0
        scalars = [update.restore, update.gain, update.eps, update.lr, update.weight_decay]
        values = scalars + list(update.m_coefs) + list(update.v_coefs or ())
        # Rounded from float64 once, on the host, as the reference rounds them.
        coefs = torch.tensor(values, dtype=torch.float64).to(dtype).to(tensor.device)
        stream_bases = torch.tensor(signed, dtype=torch.int64).to(tensor.device)
        programs = _programs(n, offset)
        partials = torch.empty(programs, dtype=torch.float64, device=tensor.device)
        _fused_update_kernel[(programs,)](
            _flat(tensor),
            normal_table(tensor.device),
            stream_bases,
            coefs,
            partials,
            offset,
            n,
            STREAMS=len(signed),
            USE_V=update.v_coefs is not None,
            F64=dtype == torch.float64,
            BF16=tensor.dtype == torch.bfloat16,
            BLOCK=BLOCK,
            **_launch_options(),
        )
        return float(partials.sum())

    def _noise_sq_sum(self, tensor: torch.Tensor, base: int, offset: int) -> float:
        base = _signed(base)
        n = tensor.numel()
        if n == 0:
            return 0.0
        programs = _programs(n, offset)
        partials = torch.empty(programs, dtype=torch.float64, device=tensor.device)
        _noise_sq_kernel[(programs,)](
            normal_table(tensor.device), base, partials, offset, n, BLOCK=BLOCK
        )
        return float(partials.sum())
