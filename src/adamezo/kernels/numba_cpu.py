"""The compiled CPU kernel: numba loops that regenerate z on the fly and touch θ once per pass.

A tensor is cut into segments of ``SEGMENT`` elements (threads take contiguous runs of them; the
compiled loops release the GIL) and segments into blocks of ``BLOCK`` elements. For each block
and each stream a pass hashes the block's words into scratch (a vectorised loop: AVX2 emulates
the 64-bit products), looks the four normals of every word up in the table (scalar loads, which
measured faster than AVX2 gathers on the build machine: 0.65 against 1.1 cycles per element),
then runs vectorised element loops. AdaMeZO's update keeps t, m and v in per-block scratch
(a few KiB, in L1) and writes θ once: no model-sized m, v or z buffer exists at any point. It
folds the older streams in two at a time, so that m and v are read and written once per pair
(the sums still run left to right: the same bits as one stream at a time).

Storage formats: float32 and float64 arrays directly; bfloat16 and float16 as their 16-bit
patterns, converted exactly as torch converts them (round to nearest even). Arithmetic follows
:mod:`adamezo.kernels.base` operation by operation with no fast-math flags, so LLVM may neither
contract products into FMAs nor reassociate sums: results equal the plain-torch kernel bit for
bit. Σ(Δθ)² is accumulated per block position within a segment and the segment partials are
added with ``math.fsum``, so it does not depend on the thread count or on scheduling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from adamezo.kernels.base import FusedUpdate, Kernel, StateUpdate, compute_dtype, is_dense
from adamezo.kernels.lowrank import (
    Factors,
    ProductPasses,
    ProductUpdate,
    matrix_shape,
)
from adamezo.noise import (
    GAMMA,
    LANE_BITS,
    LANE_SHIFT,
    LANES,
    MIX1,
    MIX2,
    TABLE_BITS,
    TABLE_SIZE,
    normal_table,
)

try:  # numba is a core dependency, but the kernel registry must survive a broken install.
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic, overload
except ImportError as error:  # pragma: no cover - exercised only without numba
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

BLOCK = 1024
"""Elements per block: its scratch (two z, t, m, v, Σ, words: 30 KiB) and the table fit L2."""
SEGMENT = 1 << 14
"""Elements per unit of work: threads take contiguous runs of segments, and each segment's
Σ(Δθ)² is a separate partial, so the total does not depend on the thread count."""

_GAMMA = np.uint64(GAMMA)
_MIX1 = np.uint64(MIX1)
_MIX2 = np.uint64(MIX2)
_S0, _S1, _S2, _S3 = (np.uint64(LANE_BITS * lane + LANE_SHIFT) for lane in range(LANES))
_MASK = np.uint64(TABLE_SIZE - 1)
_B0, _B1, _B2, _B3 = (
    np.uint64(LANE_BITS * lane + LANE_SHIFT + TABLE_BITS - 1) for lane in range(LANES)
)
_ONE = np.uint64(1)
SIGN_MARKER = np.zeros(0, np.int8)
"""The "table" the Rademacher kernel hands its passes: its dtype selects the sign-bit fill."""
_WORDS_PER_BLOCK = BLOCK // LANES + 2

if _IMPORT_ERROR is None:

    @intrinsic
    def _f32_bits(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.uint32(types.float32), codegen

    @intrinsic
    def _f32_from_bits(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.uint32), codegen

    @njit(inline="always")
    def _mix64(x):
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        return x ^ (x >> np.uint64(31))

    @njit(inline="always")
    def _fill_noise(z, words, table, base, first_word, count):
        """z[4w + l] = TABLE[lane l of word(base, first_word + w)], w < count: a vectorised
        hash loop, then scalar table lookups (see the module docstring)."""
        word = base + first_word * _GAMMA
        for w in range(count):
            words[w] = _mix64(word)
            word += _GAMMA
        for w in range(count):
            bits = words[w]
            z[4 * w] = table[(bits >> _S0) & _MASK]
            z[4 * w + 1] = table[(bits >> _S1) & _MASK]
            z[4 * w + 2] = table[(bits >> _S2) & _MASK]
            z[4 * w + 3] = table[(bits >> _S3) & _MASK]

    @njit(inline="always")
    def _fill_signs(z, words, base, first_word, count):
        """z[4w + l] = ±1, the sign of the normal ``_fill_noise`` would draw: the top bit of the
        lane's 12-bit table index (SIGNS[k] is −1 below 2048, +1 from it), with no table load,
        so the loop vectorises (measured 0.175 s against 0.22 s per 134.5 M elements, one
        thread)."""
        word = base + first_word * _GAMMA
        for w in range(count):
            words[w] = _mix64(word)
            word += _GAMMA
        one, two = np.float32(1.0), np.float32(2.0)
        for w in range(count):
            bits = words[w]
            z[4 * w] = np.float32((bits >> _B0) & _ONE) * two - one
            z[4 * w + 1] = np.float32((bits >> _B1) & _ONE) * two - one
            z[4 * w + 2] = np.float32((bits >> _B2) & _ONE) * two - one
            z[4 * w + 3] = np.float32((bits >> _B3) & _ONE) * two - one

    @njit(inline="always")
    def _block_noise(z, words, table, base, offset, start, stop):
        """Fill z with the noise of elements [start, stop) of the stream; returns the view of z
        whose element j is the noise of element start + j.

        Returning a view, rather than an offset into z, keeps the element loops vectorised: with
        z[lane + j] numba cannot prove the index non-negative and emits a wrap-around select
        that LLVM does not vectorise (measured 4x slower element loops)."""
        first = offset + start
        count = ((offset + stop - 1) >> 2) - (first >> 2) + 1
        _fill(z, words, table, base, np.uint64(first >> 2), count)
        lane = first & 3
        return z[lane : lane + (stop - start)]

    @njit(inline="always")
    def _sum_in_order(values):
        total = 0.0
        for value in values:
            total += value
        return total

    @njit(inline="always")
    def _bf16_to_f32(bits):
        return _f32_from_bits(np.uint32(bits) << np.uint32(16))

    @njit(inline="always")
    def _f32_to_bf16(value):
        # torch's float -> bfloat16: round to nearest even; NaN becomes the canonical quiet NaN.
        bits = _f32_bits(value)
        bias = ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
        nan = np.uint32(value != value)
        return np.uint16(((bits + bias) >> np.uint32(16)) * (np.uint32(1) - nan) + nan * 0x7FC0)

    @njit(inline="always")
    def _f16_to_f32(bits):
        # c10's fp16_ieee_to_fp32_value: exact, subnormals included. numba widens uint32
        # arithmetic to 64 bits, so the wrap-around of w + w is written out; selects are written
        # as arithmetic because numba's inliner mishandles branch-local values.
        w = np.uint32(bits) << np.uint32(16)
        sign = w & np.uint32(0x80000000)
        two_w = (w + w) & np.uint32(0xFFFFFFFF)
        normal = _f32_from_bits((two_w >> np.uint32(4)) + np.uint32(0xE0 << 23))
        normal = normal * np.float32(2.0**-112)
        subnormal = _f32_from_bits((two_w >> np.uint32(17)) | np.uint32(126 << 23))
        subnormal = subnormal - np.float32(0.5)
        small = np.uint32(two_w < np.uint32(1 << 27))
        magnitude = _f32_bits(subnormal) * small + _f32_bits(normal) * (np.uint32(1) - small)
        return _f32_from_bits(sign | magnitude)

    @njit(inline="always")
    def _f32_to_f16(value):
        # c10's fp16_ieee_from_fp32_value: round to nearest even, overflow to inf, NaN quiet;
        # but a NaN of either sign is stored as 0x7E00, as every kernel stores it.
        base = (abs(value) * np.float32(2.0**112)) * np.float32(2.0**-110)
        w = _f32_bits(value)
        shl1_w = (w + w) & np.uint32(0xFFFFFFFF)
        sign = w & np.uint32(0x80000000)
        bias = max(shl1_w & np.uint32(0xFF000000), np.uint32(0x71000000))
        base = _f32_from_bits((bias >> np.uint32(1)) + np.uint32(0x07800000)) + base
        bits = _f32_bits(base)
        nonsign = ((bits >> np.uint32(13)) & np.uint32(0x7C00)) + (bits & np.uint32(0x0FFF))
        nan = np.uint32(shl1_w > np.uint32(0xFF000000))
        nonsign = nonsign * (np.uint32(1) - nan) + nan * np.uint32(0x7E00)
        return np.uint16(((sign * (np.uint32(1) - nan)) >> np.uint32(16)) | nonsign)

    # The building blocks under public names, for numba code outside this module (the noise
    # benchmarks) that must run exactly what the kernel runs.
    f32_bits = _f32_bits
    """The bit pattern of a float32 as a uint32 (a bitcast); callable from numba code only."""
    f32_from_bits = _f32_from_bits
    """The float32 whose bit pattern is a uint32 (a bitcast); callable from numba code only."""
    mix64 = _mix64
    """SplitMix64's finaliser: x ^= x >> 30; x *= MIX1; x ^= x >> 27; x *= MIX2; x ^= x >> 31
    (uint64, wrapping); numba code only."""
    fill_noise = _fill_noise
    """fill_noise(z, words, table, base, first_word, count): z[4w + l] = table[lane l of
    mix64(base + (first_word + w)·GAMMA)] for w < count, ``words`` the scratch of the hashes;
    the kernel's noise loop, numba code only."""


def _fill(z, words, table, base, first_word, count):
    """A block's stream values: normals looked up in ``table``, or Rademacher signs from the
    bits when ``table`` is :data:`SIGN_MARKER` (overloaded on its dtype below)."""


def _load(values, j):
    """values[j] in the compute dtype (overloaded per storage format below)."""


def _store(values, j, x):
    """values[j] = x rounded to the storage format (overloaded per storage format below)."""


def _compute(x, values):
    """x converted to the compute dtype of ``values``' storage format."""


def _state_rule(theta, states, i, z, coefs):
    """(t, u, lr, weight_decay) at element i, the states at i updated: ZO-Adam's rule for two
    states (m, v), HiZOO's for one (H); overloaded below, so each is compiled alone."""


# Storage formats as numba sees them: bfloat16 bits travel as uint16, float16 bits as int16, so
# that each format is its own array type and gets its own compiled (and cached) specialisation.
if _IMPORT_ERROR is None:
    # Not inline="always": numba's IR inliner then warns about the loops' carried variables;
    # LLVM inlines the call all the same.
    @overload(_fill)
    def _fill_impl(z, words, table, base, first_word, count):
        if table.dtype == types.int8:
            return lambda z, words, table, base, first_word, count: _fill_signs(
                z, words, base, first_word, count
            )
        return lambda z, words, table, base, first_word, count: _fill_noise(
            z, words, table, base, first_word, count
        )

    @overload(_load, inline="always")
    def _load_impl(values, j):
        if values.dtype == types.uint16:
            return lambda values, j: _bf16_to_f32(values[j])
        if values.dtype == types.int16:
            return lambda values, j: _f16_to_f32(np.uint16(values[j]))
        return lambda values, j: values[j]

    @overload(_store, inline="always")
    def _store_impl(values, j, x):
        if values.dtype == types.uint16:

            def store_bf16(values, j, x):
                values[j] = _f32_to_bf16(x)

            return store_bf16
        if values.dtype == types.int16:

            def store_f16(values, j, x):
                values[j] = np.int16(_f32_to_f16(x))

            return store_f16

        def store_native(values, j, x):
            values[j] = x

        return store_native

    @overload(_compute, inline="always")
    def _compute_impl(x, values):
        if values.dtype == types.float64:
            return lambda x, values: np.float64(x)
        return lambda x, values: np.float32(x)

    @overload(_state_rule, inline="always")
    def _state_rule_impl(theta, states, i, z, coefs):
        if states.count == 2:

            def moments(theta, states, i, z, coefs):  # kernels.base.MomentUpdate
                t = _load(theta, i) + z * coefs[0]
                g = z * coefs[1]
                m = _load(states[0], i) * coefs[2] + g * coefs[3]
                v = _load(states[1], i) * coefs[4] + (g * g) * coefs[5]
                _store(states[0], i, m)
                _store(states[1], i, v)
                return t, (m / coefs[6]) / (np.sqrt(v / coefs[7]) + coefs[8]), coefs[9], coefs[10]

            return moments

        def curvature(theta, states, i, z, coefs):  # kernels.base.CurvatureUpdate
            h = _load(states[0], i)
            t = _load(theta, i) + (z / np.sqrt(h)) * coefs[0]
            h = h * coefs[3] + ((h * (z * z)) * coefs[2]) * coefs[4]
            _store(states[0], i, h)
            return t, (z * coefs[1]) / np.sqrt(h), coefs[5], coefs[6]

        return curvature

    @njit(nogil=True, cache=True, error_model="numpy")
    def _add_noise(theta, table, base, scale, offset, first_segment, end_segment):
        """θ[i] += scale·z[offset + i] in the compute dtype, rounded once to storage."""
        n = theta.size
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        for seg in range(first_segment, end_segment):
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                zs = _block_noise(z, words, table, base, offset, start, stop)
                values = theta[start:stop]
                for j in range(stop - start):
                    _store(values, j, _load(values, j) + _compute(zs[j], theta) * scale)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _switch_noise(theta, table, old, new, scale, offset, first_segment, end_segment):
        """θ[i] += (−scale)·z_old[offset + i], rounded to storage, then += scale·z_new[…]: two
        add-noise passes, block by block, so θ is read and written once."""
        n = theta.size
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        z2 = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        back = -scale
        for seg in range(first_segment, end_segment):
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                za = _block_noise(z, words, table, old, offset, start, stop)
                zb = _block_noise(z2, words, table, new, offset, start, stop)
                values = theta[start:stop]
                for j in range(stop - start):
                    _store(values, j, _load(values, j) + _compute(za[j], theta) * back)
                for j in range(stop - start):
                    _store(values, j, _load(values, j) + _compute(zb[j], theta) * scale)

    # The update's pieces are inlined into _fused_update: one function in the compiled code, as
    # fast as one written out, each piece readable alone.
    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _first_streams(theta, values, za, zb, two, t, m, v, m_coefs, v_coefs, use_v, restore):
        """Streams 0 and, if ``two``, 1 of a block: t restores θ, m and v start from +0."""
        zero = _compute(0.0, theta)
        ca = m_coefs[0]
        length = values.size
        if not two:
            for j in range(length):
                a = _compute(za[j], theta)
                t[j] = _load(values, j) + a * restore
                m[j] = zero + a * ca
            if use_v:
                da = v_coefs[0]
                for j in range(length):
                    a = _compute(za[j], theta)
                    v[j] = zero + (a * a) * da
            return
        cb = m_coefs[1]
        for j in range(length):
            a = _compute(za[j], theta)
            t[j] = _load(values, j) + a * restore
            m[j] = (zero + a * ca) + _compute(zb[j], theta) * cb
        if use_v:
            da, db = v_coefs[0], v_coefs[1]
            for j in range(length):
                a = _compute(za[j], theta)
                b = _compute(zb[j], theta)
                v[j] = (zero + (a * a) * da) + (b * b) * db

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _add_stream_pair(theta, za, zb, m, v, ca, cb, da, db, use_v, length):
        """Two older streams in one sweep over m and v (each sum still runs left to right, so
        the result is that of one stream at a time)."""
        if use_v:
            for j in range(length):
                a = _compute(za[j], theta)
                b = _compute(zb[j], theta)
                m[j] = (m[j] + a * ca) + b * cb
                v[j] = (v[j] + (a * a) * da) + (b * b) * db
        else:
            for j in range(length):
                a = _compute(za[j], theta)
                b = _compute(zb[j], theta)
                m[j] = (m[j] + a * ca) + b * cb

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _add_stream(theta, za, m, v, ca, da, use_v, length):
        if use_v:
            for j in range(length):
                a = _compute(za[j], theta)
                m[j] = m[j] + a * ca
                v[j] = v[j] + (a * a) * da
        else:
            for j in range(length):
                m[j] = m[j] + _compute(za[j], theta) * ca

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _write_update(values, t, m, v, use_v, gain, eps, lr, wd, sq):
        """θ' = t − (t·wd + u)·lr into ``values``; Δθ goes back into m and Δθ² into sq. Short
        separate loops keep LLVM's alias checks few enough that every loop vectorises."""
        length = values.size
        if use_v:
            for j in range(length):
                u = (m[j] * gain) / (np.sqrt(v[j]) + eps)
                new = t[j] - (t[j] * wd + u) * lr
                _store(values, j, new)
                m[j] = new - t[j]
        else:
            for j in range(length):
                new = t[j] - (t[j] * wd + m[j] * gain) * lr
                _store(values, j, new)
                m[j] = new - t[j]
        for j in range(length):
            delta = np.float64(m[j])
            sq[j] += delta * delta

    @njit(nogil=True, cache=True, error_model="numpy")
    def _add_noise_into(out, theta, table, base, scale, offset, first_segment, end_segment):
        """out[i] = θ[i] + scale·z[offset + i], as ``_add_noise`` computes it; θ is only read."""
        n = theta.size
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        for seg in range(first_segment, end_segment):
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                zs = _block_noise(z, words, table, base, offset, start, stop)
                values, into = theta[start:stop], out[start:stop]
                for j in range(stop - start):
                    _store(into, j, _load(values, j) + _compute(zs[j], theta) * scale)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _fused_update(
        theta,
        table,
        bases,
        m_coefs,
        v_coefs,
        use_v,
        restore,
        gain,
        eps,
        lr,
        wd,
        offset,
        partials,
        first_segment,
        end_segment,
    ):
        """The fused restore-and-update of :mod:`adamezo.kernels.base`; partials[s] = Σ(θ' − t)²
        over segment s."""
        n = theta.size
        streams = bases.size
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        z2 = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        t = np.empty(BLOCK, m_coefs.dtype)
        m = np.empty(BLOCK, m_coefs.dtype)
        v = np.empty(BLOCK, m_coefs.dtype)
        sq = np.empty(BLOCK, np.float64)  # Σ(Δθ)² per position in the block: vectorises
        for seg in range(first_segment, end_segment):
            sq[:] = 0.0
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                length = stop - start
                values = theta[start:stop]
                za = _block_noise(z, words, table, bases[0], offset, start, stop)
                zb = za
                if streams > 1:
                    zb = _block_noise(z2, words, table, bases[1], offset, start, stop)
                _first_streams(
                    theta, values, za, zb, streams > 1, t, m, v, m_coefs, v_coefs, use_v, restore
                )
                for k in range(2, streams - 1, 2):
                    za = _block_noise(z, words, table, bases[k], offset, start, stop)
                    zb = _block_noise(z2, words, table, bases[k + 1], offset, start, stop)
                    da, db = (v_coefs[k], v_coefs[k + 1]) if use_v else (m_coefs[k], m_coefs[k])
                    _add_stream_pair(
                        theta, za, zb, m, v, m_coefs[k], m_coefs[k + 1], da, db, use_v, length
                    )
                if streams > 2 and streams % 2 == 1:
                    k = streams - 1
                    za = _block_noise(z, words, table, bases[k], offset, start, stop)
                    da = v_coefs[k] if use_v else m_coefs[k]
                    _add_stream(theta, za, m, v, m_coefs[k], da, use_v, length)
                _write_update(values, t, m, v, use_v, gain, eps, lr, wd, sq)
            partials[seg] = _sum_in_order(sq)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _state_update(theta, states, table, base, coefs, offset, partials, first, end):
        """ZO-Adam's update (``states`` = (m, v)) or HiZOO's (``states`` = (H,)), element by
        element (see :func:`_state_rule`); partials[s] = Σ(θ' − t)² over segment s."""
        n = theta.size
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        sq = np.empty(BLOCK, np.float64)
        for seg in range(first, end):
            sq[:] = 0.0
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                zs = _block_noise(z, words, table, base, offset, start, stop)
                for j in range(stop - start):
                    i = start + j
                    t, u, lr, wd = _state_rule(theta, states, i, _compute(zs[j], theta), coefs)
                    new = t - (t * wd + u) * lr
                    _store(theta, i, new)
                    delta = np.float64(new - t)
                    sq[j] += delta * delta
            partials[seg] = _sum_in_order(sq)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _add_preconditioned_noise(out, theta, hessian, table, base, scale, offset, first, end):
        """out[i] = θ[i] + (z[offset + i] / √H[i])·scale (``out`` may be θ)."""
        n = theta.size
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        for seg in range(first, end):
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                zs = _block_noise(z, words, table, base, offset, start, stop)
                values, hs, into = theta[start:stop], hessian[start:stop], out[start:stop]
                for j in range(stop - start):
                    step = (_compute(zs[j], theta) / np.sqrt(_load(hs, j))) * scale
                    _store(into, j, _load(values, j) + step)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _noise_sq_sums(table, base, n, offset, partials, first_segment, end_segment):
        """partials[s] = Σ z² over segment s of the stream's elements [offset, offset + n)."""
        words = np.empty(_WORDS_PER_BLOCK, np.uint64)
        z = np.empty(LANES * _WORDS_PER_BLOCK, np.float32)
        sq = np.empty(BLOCK, np.float64)
        for seg in range(first_segment, end_segment):
            sq[:] = 0.0
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, n), BLOCK):
                stop = min(start + BLOCK, n)
                zs = _block_noise(z, words, table, base, offset, start, stop)
                for j in range(stop - start):
                    zj = np.float64(zs[j])
                    sq[j] += zj * zj
            partials[seg] = _sum_in_order(sq)

    # The low-rank passes (adamezo.kernels.lowrank): the same operation order as its plain-torch
    # ProductPasses. ``in_place`` says that ``out`` is ``source``: the loops then touch one
    # array, since LLVM's runtime check would find two aliased arrays overlapping and fall
    # back to scalar code. Slices are written a[i:j], never a[slice_object]: numba types the
    # latter as possibly strided, and its loops do not vectorise (measured 7x slower).
    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _row_product(d, a, bt, i):
        """d[j] = a[i, 0]·bt[0, j] + a[i, 1]·bt[1, j] + … (left to right): row i of A Bᵀ."""
        first, ai0 = bt[0], a[i, 0]
        for j in range(d.size):
            d[j] = ai0 * first[j]
        for k in range(1, bt.shape[0]):
            row, aik = bt[k], a[i, k]
            for j in range(d.size):
                d[j] = d[j] + aik * row[j]

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _add_scaled(out, source, in_place, d, scale):
        """out[j] = source[j] + d[j]·scale, rounded once to storage."""
        if in_place:
            for j in range(d.size):
                _store(source, j, _load(source, j) + d[j] * scale)
        else:
            for j in range(d.size):
                _store(out, j, _load(source, j) + d[j] * scale)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _lowrank_add(out, source, in_place, a, bt, scale, unit_rows, first_unit, end_unit):
        """out = source + scale·A Bᵀ over rows [first_unit, end_unit)·unit_rows, each row's
        product summed in L1 scratch (small ranks)."""
        cols = bt.shape[1]
        d = np.empty(cols, bt.dtype)
        for i in range(first_unit * unit_rows, min(end_unit * unit_rows, a.shape[0])):
            _row_product(d, a, bt, i)
            start, stop = i * cols, (i + 1) * cols
            _add_scaled(out[start:stop], source[start:stop], in_place, d, scale)

    @njit(nogil=True, cache=True, error_model="numpy", inline="always")
    def _update_piece(values, d_r, restored, restore, d_u, coef, lr, wd, t, sq):
        """θ' = t − (t·wd + d_u·coef)·lr, t = θ + d_r·restore (θ unless ``restored``), into
        ``values``; sq[j] += (θ' − t)². ``d_u`` is overwritten (AdaMeZO's update with m = d_u,
        gain = coef and no second moment: the same operations in the same order)."""
        if restored:
            for j in range(values.size):
                t[j] = _load(values, j) + d_r[j] * restore
        else:
            for j in range(values.size):
                t[j] = _load(values, j)
        _write_update(values, t, d_u, d_u, False, coef, coef, lr, wd, sq)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _lowrank_update(
        theta,
        a_r,
        bt_r,
        restored,
        restore,
        a_u,
        bt_u,
        same,
        coef,
        lr,
        wd,
        unit_rows,
        partials,
        first_unit,
        end_unit,
    ):
        """The restore-and-update with small-rank products summed per row; partials[u] is
        Σ(θ' − t)² over unit u's rows (per column, then the columns in order)."""
        cols = bt_u.shape[1]
        d_r, d_u = np.empty(cols, bt_u.dtype), np.empty(cols, bt_u.dtype)
        t, sq = np.empty(cols, bt_u.dtype), np.empty(cols, np.float64)
        for unit in range(first_unit, end_unit):
            sq[:] = 0.0
            for i in range(unit * unit_rows, min((unit + 1) * unit_rows, a_u.shape[0])):
                if restored:
                    _row_product(d_r, a_r, bt_r, i)
                if not (restored and same):
                    _row_product(d_u, a_u, bt_u, i)
                values = theta[i * cols : (i + 1) * cols]
                du = d_r if restored and same else d_u
                _update_piece(values, d_r, restored, restore, du, coef, lr, wd, t, sq)
            partials[unit] = _sum_in_order(sq)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _add_product(out, source, in_place, d, scale, first_segment, end_segment):
        """out = source + scale·d over the elements of segments [first, end): the sweep after a
        BLAS block product."""
        stop = min(end_segment * SEGMENT, d.size)
        start = first_segment * SEGMENT
        _add_scaled(out[start:stop], source[start:stop], in_place, d[start:stop], scale)

    @njit(nogil=True, cache=True, error_model="numpy")
    def _product_update(
        values, d_r, restored, restore, d_u, coef, lr, wd, partials, first_segment, end_segment
    ):
        """The restore-and-update's sweep after BLAS block products; partials[s] = Σ(θ' − t)²
        over segment s."""
        t, sq = np.empty(BLOCK, d_u.dtype), np.empty(BLOCK, np.float64)
        for seg in range(first_segment, end_segment):
            sq[:] = 0.0
            for start in range(seg * SEGMENT, min(seg * SEGMENT + SEGMENT, values.size), BLOCK):
                stop = min(start + BLOCK, values.size)
                dr, du = d_r[start:stop], d_u[start:stop]
                _update_piece(values[start:stop], dr, restored, restore, du, coef, lr, wd, t, sq)
            partials[seg] = _sum_in_order(sq)


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    """A flat numpy view of ``tensor``'s storage in the format the compiled passes expect."""
    flat = tensor.detach().view(-1)
    if flat.dtype == torch.bfloat16:
        return flat.view(torch.int16).numpy().view(np.uint16)
    if flat.dtype == torch.float16:
        return flat.view(torch.int16).numpy()
    return flat.numpy()


def _segments(numel: int) -> int:
    return -(-numel // SEGMENT)


_POOL: tuple[int, ThreadPoolExecutor] | None = None
"""(worker count, pool) of the helper threads; the calling thread always takes one share."""


def _helpers(count: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL[0] < count:
        _POOL = (count, ThreadPoolExecutor(max_workers=count, thread_name_prefix="adamezo-numba"))
    return _POOL[1]


def _run(compiled_pass, numel: int, *args) -> None:
    """Run ``compiled_pass(*args, first_segment, end_segment)`` over all segments of a tensor,
    split into ``torch.get_num_threads()`` contiguous runs (the passes release the GIL)."""
    _run_units(compiled_pass, _segments(numel), *args)


def _run_units(compiled_pass, segments: int, *args) -> None:
    """:func:`_run` over ``segments`` units of work, whatever a unit is."""
    threads = max(1, min(torch.get_num_threads(), segments))
    if threads == 1:
        compiled_pass(*args, 0, segments)
        return
    pool = _helpers(threads - 1)
    bounds = [segments * i // threads for i in range(threads + 1)]
    futures = [
        pool.submit(compiled_pass, *args, bounds[i], bounds[i + 1]) for i in range(1, threads)
    ]
    compiled_pass(*args, bounds[0], bounds[1])
    for future in futures:
        future.result()


def _numpy_type(dtype: torch.dtype) -> type:
    """The compute dtype as a numpy scalar type."""
    return np.float64 if dtype == torch.float64 else np.float32


class NumbaKernel(Kernel):
    """Compiled, multithreaded CPU passes (numba); bitwise equal to the plain-torch kernel.

    Working memory is a few KiB of scratch per thread, whatever the tensor size; ``chunk_size``
    is accepted for a uniform factory signature and not needed.
    """

    name = "numba"

    def __init__(self, chunk_size: int | None = None) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(f"the numba kernel needs numba: {_IMPORT_ERROR}") from _IMPORT_ERROR
        self.chunk_size = chunk_size

    def supports(self, tensor: torch.Tensor) -> bool:
        return is_dense(tensor, "cpu")

    def _noise_table(self) -> np.ndarray:
        """What the passes read for each 12-bit index: the 4096 normal quantiles."""
        return normal_table().numpy()

    def _add_noise(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> None:
        ftype = _numpy_type(dtype)
        if tensor.numel():
            args = (
                _as_array(tensor),
                self._noise_table(),
                np.uint64(base),
                ftype(scale),
                int(offset),
            )
            _run(_add_noise, tensor.numel(), *args)

    def _switch_noise(
        self, tensor: torch.Tensor, old: int, new: int, scale: float, offset: int
    ) -> None:
        if tensor.numel():
            bases = (np.uint64(old), np.uint64(new))
            ftype = _numpy_type(compute_dtype(tensor.dtype))
            args = (_as_array(tensor), self._noise_table(), *bases, ftype(scale))
            _run(_switch_noise, tensor.numel(), *args, int(offset))

    def _perturbed_copy(
        self, tensor: torch.Tensor, base: int, scale: float, offset: int, dtype: torch.dtype
    ) -> torch.Tensor:
        # One pass (read θ, write the copy) instead of a copy and an in-place pass.
        out = torch.empty_like(tensor, memory_format=torch.contiguous_format)
        if tensor.numel():
            table, ftype = self._noise_table(), _numpy_type(dtype)
            args = (_as_array(out), _as_array(tensor), table, np.uint64(base), ftype(scale))
            _run(_add_noise_into, tensor.numel(), *args, int(offset))
        return out

    def _fused_update(
        self,
        tensor: torch.Tensor,
        bases: Sequence[int],
        update: FusedUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float:
        ftype = _numpy_type(dtype)
        stream_bases = np.array(bases, dtype=np.uint64)
        if tensor.numel() == 0:
            return 0.0
        # numpy rounds a Python float to float32 to nearest even, exactly as the reference does.
        m_coefs = np.array(update.m_coefs, dtype=np.float64).astype(ftype)
        use_v = update.v_coefs is not None
        v_coefs = np.array(update.v_coefs if use_v else (), dtype=np.float64).astype(ftype)
        partials = np.empty(_segments(tensor.numel()), dtype=np.float64)
        _run(
            _fused_update,
            tensor.numel(),
            _as_array(tensor),
            self._noise_table(),
            stream_bases,
            m_coefs,
            v_coefs,
            use_v,
            ftype(update.restore),
            ftype(update.gain),
            ftype(update.eps),
            ftype(update.lr),
            ftype(update.weight_decay),
            int(offset),
            partials,
        )
        return math.fsum(partials)

    def _state_update(
        self,
        tensor: torch.Tensor,
        states: tuple[torch.Tensor, ...],
        base: int,
        update: StateUpdate,
        offset: int,
        dtype: torch.dtype,
    ) -> float:
        if tensor.numel() == 0:
            return 0.0
        # numpy rounds a Python float to float32 to nearest even, exactly as the reference does.
        coefs = np.array(update.coefficients(), dtype=np.float64).astype(_numpy_type(dtype))
        partials = np.empty(_segments(tensor.numel()), dtype=np.float64)
        arrays = (_as_array(tensor), tuple(_as_array(state) for state in states))
        args = (*arrays, self._noise_table(), np.uint64(base), coefs, int(offset), partials)
        _run(_state_update, tensor.numel(), *args)
        return math.fsum(partials)

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
        if tensor.numel():
            arrays = (_as_array(out), _as_array(tensor), _as_array(hessian), self._noise_table())
            args = (*arrays, np.uint64(base), _numpy_type(dtype)(scale), int(offset))
            _run(_add_preconditioned_noise, tensor.numel(), *args)

    def product_passes(self) -> ProductPasses:
        return _PRODUCT_PASSES

    def _noise_sq_sum(self, tensor: torch.Tensor, base: int, offset: int) -> float:
        partials = np.empty(_segments(tensor.numel()), dtype=np.float64)
        if partials.size:
            args = (self._noise_table(), np.uint64(base), tensor.numel(), int(offset), partials)
            _run(_noise_sq_sums, tensor.numel(), *args)
        return math.fsum(partials)


class NumbaProductPasses(ProductPasses):
    """The low-rank passes compiled, bitwise the plain-torch
    :class:`~adamezo.kernels.lowrank.ProductPasses` (same operation order, no fused multiply-add).

    Up to ``INLINE_RANK`` the products are summed row by row inside one multithreaded sweep over
    the matrix (θ read and written once, no block buffers); above it, torch's BLAS computes each
    row block's product and a multithreaded sweep applies it."""

    def add_inline(
        self, out: torch.Tensor, source: torch.Tensor, factors: Factors, scale: float
    ) -> bool:
        a, b = factors
        unit_rows = _unit_rows(source)
        in_place = out.data_ptr() == source.data_ptr()
        arrays = (_as_array(out), _as_array(source), in_place, *_factor_arrays(a, b))
        units = -(-a.shape[0] // unit_rows)
        _run_units(_lowrank_add, units, *arrays, _numpy_type(a.dtype)(scale), unit_rows)
        return True

    def update_inline(self, tensor: torch.Tensor, spec: ProductUpdate) -> float:
        ftype = _numpy_type(compute_dtype(tensor.dtype))
        a_u, bt_u = _factor_arrays(*spec.factors)
        restored, same = spec.restore_factors is not None, spec.same
        a_r, bt_r = (
            (a_u, bt_u)
            if spec.restore_factors is None or same
            else _factor_arrays(*spec.restore_factors)
        )
        unit_rows = _unit_rows(tensor)
        partials = np.empty(-(-a_u.shape[0] // unit_rows), dtype=np.float64)
        numbers = (ftype(spec.coef), ftype(spec.lr), ftype(spec.weight_decay), unit_rows, partials)
        arrays = (_as_array(tensor), a_r, bt_r, restored, ftype(spec.restore), a_u, bt_u, same)
        _run_units(_lowrank_update, partials.size, *arrays, *numbers)
        return math.fsum(partials)

    def sweep_add(
        self, out: torch.Tensor, source: torch.Tensor, d: torch.Tensor, scale: float
    ) -> None:
        in_place = out.data_ptr() == source.data_ptr()
        arrays = (_as_array(out), _as_array(source), in_place, _as_array(d))
        _run(_add_product, d.numel(), *arrays, _numpy_type(d.dtype)(scale))

    def sweep_update(
        self, block: torch.Tensor, d_r: torch.Tensor | None, d_u: torch.Tensor, spec: ProductUpdate
    ) -> float:
        ftype = _numpy_type(d_u.dtype)
        product = _as_array(d_u)
        partials = np.empty(_segments(d_u.numel()), dtype=np.float64)
        restored = (product if d_r is None else _as_array(d_r), d_r is not None)
        numbers = (ftype(spec.coef), ftype(spec.lr), ftype(spec.weight_decay), partials)
        arrays = (_as_array(block), *restored, ftype(spec.restore), product)
        _run(_product_update, d_u.numel(), *arrays, *numbers)
        return math.fsum(partials)


def _unit_rows(tensor: torch.Tensor) -> int:
    """Rows per unit of work of the small-rank sweeps: about SEGMENT elements, one row at least."""
    return max(1, SEGMENT // max(matrix_shape(tensor)[1], 1))


def _factor_arrays(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A (rows × r) and Bᵀ (r × cols), C-contiguous, as numpy arrays."""
    return a.detach().contiguous().numpy(), b.detach().T.contiguous().numpy()


_PRODUCT_PASSES = NumbaProductPasses()


class NumbaRademacherKernel(NumbaKernel):
    """The compiled passes along Rademacher directions, r = sign(z)
    (:func:`adamezo.noise.rademacher`): the same loops, each sign taken from the bit of the hash
    that decides it instead of the sign table; bitwise equal to the plain-torch
    :class:`~adamezo.kernels.reference.RademacherKernel`."""

    name = "numba-rademacher"

    def _noise_table(self) -> np.ndarray:
        return SIGN_MARKER
