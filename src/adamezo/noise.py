"""Counter-based Gaussian noise: z is a pure function of (step seed, tensor key, element index).

Zeroth-order optimizers never store a direction z; they regenerate it. A counter-based generator
makes any piece of any z computable alone, in any order, on any device, by any process, with no
generator state to carry around. Every kernel (this module's plain-torch reference, the compiled CPU
kernel, the GPU kernel) implements exactly this definition, bit for bit::

    GAMMA            = 0x9E3779B97F4A7C15                         (all arithmetic mod 2**64)
    mix64(x)         = SplitMix64 finalizer (shifts 30, 27, 31)
    step_seed(s, t)  = mix64(mix64(s XOR SEED_SALT) + (t + 1)·GAMMA)      seed s, step t
    stream(σ, key)   = mix64(mix64(σ XOR KEY_SALT) + (key + 1)·GAMMA)     one stream per tensor
    word(b, q)       = mix64(b + q·GAMMA)                                  one word per 4 elements
    z[i]             = TABLE[(word(b, i // 4) >> (16·(i mod 4) + 4)) AND 0xFFF]

so one hash feeds four normals, each from the top 12 bits of a 16-bit lane. Two more pieces serve
the multi-query and Rademacher methods (docs/algorithms.md)::

    query(σ, j)      = σ for j = 0, else mix64(mix64(σ XOR QUERY_SALT) + j·GAMMA)
    r[i]             = SIGNS[same 12-bit index as z[i]] = sign(z[i])            Rademacher ±1

``SIGNS[k]`` is −1 for k < 2048 and +1 otherwise: r is the sign of the Gaussian stream with the
same base, so every kernel draws it with the same passes, handed this table instead of TABLE.
 The two salts (digits
of π) keep the derivations apart: without them, seed 0 makes step 0's first stream base exactly 0.

``TABLE`` holds the 4096 mid-point quantiles Φ⁻¹((k + ½)/4096), made exactly antisymmetric and
rescaled to unit variance, stored as float32. z therefore has mean exactly 0 and variance 1 (to
float32 rounding), a Kolmogorov–Smirnov distance to N(0, 1) of about 1.2e-4 from the discreteness,
and tails cut at |z| ≈ 3.67. The choice (one hash per four elements, a table rather than
Box–Muller) was measured on the 2-core build machine: see ``docs/noise.md``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import torch

__all__ = [
    "GAMMA",
    "LANES",
    "TABLE_BITS",
    "check_uint64",
    "mix64",
    "normal",
    "normal_table",
    "query_seed",
    "rademacher",
    "sign_table",
    "signed64",
    "step_seed",
    "stream_base",
]

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
SEED_SALT = 0x243F6A8885A308D3
KEY_SALT = 0x13198A2E03707344
QUERY_SALT = 0xA4093822299F31D0
LANES = 4
"""Normals drawn from one 64-bit word."""
LANE_BITS = 16
TABLE_BITS = 12
TABLE_SIZE = 1 << TABLE_BITS
LANE_SHIFT = LANE_BITS - TABLE_BITS
"""Each lane keeps its top ``TABLE_BITS`` bits: shift right by this, then mask."""


def mix64(x: int) -> int:
    """The SplitMix64 output function on a Python int, taken mod 2**64."""
    x &= MASK64
    x = ((x ^ (x >> 30)) * MIX1) & MASK64
    x = ((x ^ (x >> 27)) * MIX2) & MASK64
    return x ^ (x >> 31)


def check_uint64(name: str, value: int) -> int:
    """``value`` as a Python int; TypeError/ValueError naming ``name`` unless in [0, 2**64)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value <= MASK64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


def step_seed(seed: int, step: int) -> int:
    """The 64-bit seed of step ``step`` of a run seeded with ``seed``."""
    seed = check_uint64("seed", seed)
    step = check_uint64("step", step)
    return mix64(mix64(seed ^ SEED_SALT) + (step + 1) * GAMMA)


def stream_base(seed: int, key: int) -> int:
    """The 64-bit base of the stream that tensor ``key`` draws from under step seed ``seed``."""
    seed = check_uint64("seed", seed)
    key = check_uint64("key", key)
    return mix64(mix64(seed ^ KEY_SALT) + (key + 1) * GAMMA)


def query_seed(seed: int, query: int) -> int:
    """The seed of query ``query`` of a step whose seed is ``seed`` (from :func:`step_seed`):
    the step's own seed for query 0, so a one-query step draws exactly what it always drew, and
    ``mix64(mix64(seed XOR QUERY_SALT) + query·GAMMA)`` for the others."""
    seed = check_uint64("seed", seed)
    query = check_uint64("query", query)
    if query == 0:
        return seed
    return mix64(mix64(seed ^ QUERY_SALT) + query * GAMMA)


def _quantile_table() -> np.ndarray:
    # Upper half from the inverse normal CDF, lower half mirrored, so the mean is exactly zero.
    half = TABLE_SIZE // 2
    inv_cdf = NormalDist().inv_cdf
    upper = np.array([inv_cdf((half + k + 0.5) / TABLE_SIZE) for k in range(half)])
    values = np.concatenate([-upper[::-1], upper])
    values /= math.sqrt(float(np.mean(values * values)))
    return values.astype(np.float32)


_TABLE = _quantile_table()
_TABLE.setflags(write=False)
_SIGNS = np.sign(_TABLE).astype(np.float32)
_SIGNS.setflags(write=False)
_DEVICE_TABLES: dict[torch.device, torch.Tensor] = {}
_DEVICE_SIGNS: dict[torch.device, torch.Tensor] = {}


def normal_table(device: torch.device | str | None = None) -> torch.Tensor:
    """The 4096-entry float32 quantile table that maps 12 random bits to a normal value."""
    return _device_table(_TABLE, _DEVICE_TABLES, device)


def sign_table(device: torch.device | str | None = None) -> torch.Tensor:
    """The 4096-entry float32 table of the Rademacher stream: sign(TABLE[k]), −1 then +1."""
    return _device_table(_SIGNS, _DEVICE_SIGNS, device)


def _device_table(
    values: np.ndarray,
    cache: dict[torch.device, torch.Tensor],
    device: torch.device | str | None,
) -> torch.Tensor:
    device = torch.device("cpu" if device is None else device)
    table = cache.get(device)
    if table is None:
        table = torch.from_numpy(values.copy()).to(device)
        cache[device] = table
    return table


def signed64(x: int) -> int:
    """A uint64 as the int64 with the same bits (torch has no general uint64 arithmetic)."""
    return x - (1 << 64) if x >= 1 << 63 else x


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 tensors holding uint64 bits."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


_MIX1_S = signed64(MIX1)
_MIX2_S = signed64(MIX2)
_GAMMA_S = signed64(GAMMA)


def _mix64_tensor(x: torch.Tensor) -> torch.Tensor:
    # int64 multiplication wraps like uint64 multiplication: the low 64 bits agree.
    x = (x ^ _shr(x, 30)) * _MIX1_S
    x = (x ^ _shr(x, 27)) * _MIX2_S
    return x ^ _shr(x, 31)


def normal(
    base: int,
    numel: int,
    offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """z[offset : offset + numel] of the stream with base ``base``, as a float32 tensor.

    This is the reference implementation of the definition above in plain torch; it runs on any
    device. It allocates about 16 bytes per element, so callers pass bounded chunks.
    """
    return _lookup(base, numel, offset, device, normal_table)


def rademacher(
    base: int,
    numel: int,
    offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """r[offset : offset + numel] = sign(z[offset : offset + numel]) of the stream with base
    ``base``, as float32 ±1: the Rademacher directions, drawn like :func:`normal`."""
    return _lookup(base, numel, offset, device, sign_table)


def _lookup(base, numel, offset, device, table_of) -> torch.Tensor:
    base = check_uint64("base", base)
    if numel < 0 or offset < 0:
        raise ValueError(f"numel and offset must be >= 0, got numel={numel}, offset={offset}")
    device = torch.device("cpu" if device is None else device)
    if numel == 0:
        return torch.empty(0, dtype=torch.float32, device=device)
    first_word = offset // LANES
    last_word = (offset + numel - 1) // LANES
    q = torch.arange(first_word, last_word + 1, dtype=torch.int64, device=device)
    words = _mix64_tensor(q * _GAMMA_S + signed64(base))
    shifts = torch.arange(LANES, dtype=torch.int64, device=device) * LANE_BITS + LANE_SHIFT
    # An arithmetic shift is fine here: the mask keeps only bits that came from the word.
    indices = ((words.unsqueeze(1) >> shifts) & (TABLE_SIZE - 1)).reshape(-1)
    start = offset - first_word * LANES
    return table_of(device)[indices[start : start + numel]]
