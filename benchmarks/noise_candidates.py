"""Could a cheaper bits-to-normal mapping pay for AdaMeZO's extra streams? Cost and quality.

Issue 13 needs AdaMeZO's step at 1.10x MeZO's; docs/benchmarks.md shows that this leaves about
0.18 ns per element per extra noise stream, of which the update's arithmetic (m, v, square root,
division: fixed by the spec) takes 0.12, so generating one normal may cost about 0.06 ns. Today's
definition costs 0.27 (hash 0.07 + table lookup 0.20, ``stream_cost.py``).

This script times, side by side in one run (one thread, the calling thread's CPU time, variants
interleaved round by round), loops that fill a block scratch of 1024 float32 normals the way the
numba kernel does (hash the block's words into scratch, then map), for:

- ``today``: SplitMix64, one hash per four elements, 12-bit lanes into the 4096-entry table
  (scalar loads), exactly the kernel's ``fill_noise``;
- ``hash only``: the same hash loop with no mapping: the floor of any four-per-hash definition;
- ``poly13``: an odd degree-13 polynomial of the 16-bit lane as a uniform on (−½, ½)
  (pure arithmetic; the words are read as 32-bit halves, so the loops run 8 lanes wide and
  every store is contiguous);
- ``logpoly8``: |z| = a degree-8 polynomial of t = −log2(2·min(u, 1 − u)), the log taken from the
  float exponent plus a degree-5 mantissa polynomial (pure arithmetic), sign from the top bit;
- ``irwin-hall4``: one normal per hash, the sum of the word's four 16-bit lanes, standardised, with
  an odd quintic correction (Irwin–Hall plus Cornish–Fisher-style fit).

The polynomials are fitted here (weighted least squares on the CDF error, then rescaled to unit
variance over their exact output levels). For each mapping it reports the cost per element,
the moments and the Kolmogorov–Smirnov distance to N(0, 1) over 10^7 draws from real stream bases
(and, for the 16-bit mappings, exactly over all 65536 levels), and whether numba's loop
vectorised (packed instructions in ``inspect_asm``).

    OMP_NUM_THREADS=1 python benchmarks/noise_candidates.py
"""

from __future__ import annotations

import argparse
import math
import re
import time

import numba
import numpy as np
import torch
from _common import machine, median, write
from numba import njit
from scipy.special import ndtr, ndtri

from adamezo.kernels.numba_cpu import f32_bits, f32_from_bits, fill_noise, mix64
from adamezo.noise import GAMMA as WORD_STEP
from adamezo.noise import normal_table, step_seed, stream_base

BLOCK = 1024
WORDS = BLOCK // 4
GAMMA = np.uint64(WORD_STEP)
N16 = 1 << 16


# ------------------------------------------------------------------------------- the fits


def ks_distance(values: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance of the empirical distribution of ``values`` to N(0, 1)."""
    y = np.sort(np.asarray(values, dtype=np.float64))
    n = y.size
    cdf = ndtr(y)
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


def fit_poly13() -> np.ndarray:
    """Coefficients c1, c3, ..., c13 of z = Σ c_j w^j, w = (k + ½)/65536 − ½."""
    u = (np.arange(N16) + 0.5) / N16
    w, x = u - 0.5, ndtri(u)
    powers = np.arange(1, 14, 2)
    a = w[:, None] ** powers
    weight = np.exp(-x * x / 2)  # CDF error ≈ φ(x)·(g(u) − x)
    for _ in range(100):  # Lawson-style reweighting towards the smallest largest CDF error
        c, *_ = np.linalg.lstsq(a * weight[:, None], x * weight, rcond=None)
        error = np.abs(ndtr(a @ c) - u)
        weight = weight * np.sqrt(error / error.max() + 1e-3)
        weight /= weight.max()
    return c / math.sqrt(float(np.mean((a @ c) ** 2)))


def _fast_log2(m: np.ndarray, mant: np.ndarray) -> np.ndarray:
    """log2 of positive integers < 2**24 as the numba loop computes it (exponent + polynomial)."""
    f = m.astype(np.float32)
    bits = f.view(np.uint32)
    e = (bits >> 23).astype(np.float64) - 127
    f1 = ((bits & 0x7FFFFF) | 0x3F800000).view(np.float32).astype(np.float64)
    return e + np.polynomial.polynomial.polyval(f1 - 1, mant)


def fit_logpoly8() -> tuple[np.ndarray, np.ndarray]:
    """(mantissa coefficients, h coefficients in t) of the logpoly8 mapping."""
    f = np.linspace(1, 2, 4097)
    mant = np.polynomial.polynomial.polyfit(f - 1, np.log2(f), 5)
    k = np.arange(N16 // 2, N16)
    u = (k + 0.5) / N16
    x = ndtri(u)
    t = 16 - _fast_log2(2 * (N16 - 1 - k) + 1, mant)
    cheb = np.polynomial.chebyshev.chebfit(t / 8.5 - 1, x, 8, w=np.exp(-x * x / 4))
    power = np.polynomial.chebyshev.cheb2poly(cheb)  # in s = t/8.5 − 1
    # In t directly: substitute s = t/8.5 − 1.
    h = np.polynomial.polynomial.Polynomial(power)(np.polynomial.Polynomial([-1, 1 / 8.5]))
    coefs = h.coef
    upper = np.polynomial.polynomial.polyval(t, coefs)
    return mant, coefs / math.sqrt(float(np.mean(upper**2)))


def fit_irwin_hall4() -> np.ndarray:
    """c1, c3, c5 of z = Σ c_j s^j, s the standardised sum of four uniforms."""
    s = np.linspace(2, 3.95, 100001)
    tail = np.zeros_like(s)
    for j in range(5):  # Irwin–Hall(4) CDF, upper half, computed as 1 − F for accuracy
        tail += (-1) ** j * math.comb(4, j) * np.clip(s - j, 0, None) ** 4
    upper = 1 - tail / 24
    x = -ndtri(upper)
    sc = (s - 2) / math.sqrt(4 / 12)
    a = sc[:, None] ** np.array([1, 3, 5])
    weight = np.exp(-x * x / 2)
    c, *_ = np.linalg.lstsq(a * weight[:, None], x * weight, rcond=None)
    return c


# ---------------------------------------------------------------------------- the loops


@njit(inline="always")
def _hash_words(words, base, first_word, count):
    word = base + first_word * GAMMA
    for w in range(count):
        words[w] = mix64(word)
        word += GAMMA


@njit(nogil=True, error_model="numpy")
def gen_today(z, words, table, base, blocks):
    for b in range(blocks):
        fill_noise(z, words, table, base, np.uint64(b * WORDS), WORDS)


@njit(nogil=True, error_model="numpy")
def gen_hash_only(z, words, table, base, blocks):
    for b in range(blocks):
        _hash_words(words, base, np.uint64(b * WORDS), WORDS)
    z[0] = np.float32(words[0] & np.uint64(1))


@njit(inline="always")
def _poly13(k, c):
    """z of one 16-bit lane value k (see fit_poly13)."""
    x = np.float32(k) * np.float32(1.0 / 65536) + np.float32(0.5 / 65536 - 0.5)
    x2 = x * x
    p = (((((c[6] * x2 + c[5]) * x2 + c[4]) * x2 + c[3]) * x2 + c[2]) * x2 + c[1]) * x2 + c[0]
    return p * x


@njit(inline="always")
def _registers(c):
    """The coefficients as a tuple of scalars, so that the loops keep them in registers."""
    return (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8])


@njit(nogil=True, error_model="numpy")
def gen_poly13(z, words, coefs, base, blocks):
    c = _registers(coefs)
    halves = words.view(np.uint32)  # 32-bit lanes: twice as many per vector as 64-bit ones
    for b in range(blocks):
        _hash_words(words, base, np.uint64(b * WORDS), WORDS)
        for half in range(2):
            out = z[half * 2 * WORDS : (half + 1) * 2 * WORDS]
            s = np.uint32(16 * half)
            for j in range(2 * WORDS):
                out[j] = _poly13(np.int32((halves[j] >> s) & np.uint32(0xFFFF)), c)


@njit(nogil=True, error_model="numpy")
def poly13_levels(c):
    out = np.empty(65536, np.float32)
    for k in range(65536):
        out[k] = _poly13(np.int32(k), c)
    return out


@njit(inline="always")
def _logpoly8(k, mant, h):
    """z of one 16-bit lane value k (see fit_logpoly8)."""
    upper = k >> np.int32(15)  # 1 in the upper half
    kk = k * upper + (np.int32(65535) - k) * (np.int32(1) - upper)  # reflect the lower half
    m = np.int32(2) * (np.int32(65535) - kk) + np.int32(1)
    bits = f32_bits(np.float32(m))
    e = np.float32(np.int32(bits >> np.uint32(23)) - np.int32(127))
    f = f32_from_bits(np.uint32((bits & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)))
    f = f - np.float32(1)
    lg = e + (((((mant[5] * f + mant[4]) * f + mant[3]) * f + mant[2]) * f + mant[1]) * f + mant[0])
    t = np.float32(16) - lg
    a = ((((h[8] * t + h[7]) * t + h[6]) * t + h[5]) * t + h[4]) * t
    a = (((a + h[3]) * t + h[2]) * t + h[1]) * t + h[0]
    return a * np.float32(2 * upper - 1)


@njit(nogil=True, error_model="numpy")
def gen_logpoly8(z, words, coefs, base, blocks):
    mant = _registers(coefs[:9])
    h = _registers(coefs[6:])
    halves = words.view(np.uint32)
    for b in range(blocks):
        _hash_words(words, base, np.uint64(b * WORDS), WORDS)
        for half in range(2):
            out = z[half * 2 * WORDS : (half + 1) * 2 * WORDS]
            s = np.uint32(16 * half)
            for j in range(2 * WORDS):
                out[j] = _logpoly8(np.int32((halves[j] >> s) & np.uint32(0xFFFF)), mant, h)


@njit(nogil=True, error_model="numpy")
def logpoly8_levels(coefs):
    out = np.empty(65536, np.float32)
    for k in range(65536):
        out[k] = _logpoly8(np.int32(k), coefs[:6], coefs[6:])
    return out


@njit(nogil=True, error_model="numpy")
def gen_irwin_hall4(z, words, c, base, blocks):
    c1, c3, c5 = c[0], c[1], c[2]  # scalars: kept in registers
    scale = np.float32(math.sqrt(3.0) / 65536)
    shift = np.float32(math.sqrt(3.0) * (2.0 / 65536 - 2.0))  # (Σ(k + ½)/65536 − 2)·√3
    mask = np.uint64(0xFFFF)
    for b in range(blocks):
        for q in range(BLOCK // WORDS):  # one hash per element: four blocks of words
            _hash_words(words, base, np.uint64(b * BLOCK + q * WORDS), WORDS)
            out = z[q * WORDS : (q + 1) * WORDS]
            for w in range(WORDS):
                bits = words[w]
                total = (
                    (bits & mask)
                    + ((bits >> np.uint64(16)) & mask)
                    + ((bits >> np.uint64(32)) & mask)
                    + (bits >> np.uint64(48))
                )
                x = np.float32(np.int32(total)) * scale + shift
                x2 = x * x
                out[w] = ((c5 * x2 + c3) * x2 + c1) * x


# --------------------------------------------------------------------------- measuring


def vectorised(function, signature_index: int = 0) -> dict:
    """Packed vector instructions in the compiled loop (AVX2 ymm / AVX-512 zmm registers)."""
    asm = list(function.inspect_asm().values())[signature_index]
    lines = [x for x in asm.splitlines() if x.startswith("\t") and not x.startswith("\t.")]
    return {
        "instructions": len(lines),
        "zmm": sum("zmm" in x for x in lines),
        "ymm": sum("ymm" in x for x in lines),
        "packed_float_mul": sum(x.startswith("\tvmulps") for x in lines),
        "packed_float_mul_8_or_16_wide": sum(
            bool(re.match(r"\tvmulps\s.*%[yz]mm", x)) for x in lines
        ),
        "packed_64bit_mul": sum(x.startswith("\tvpmullq") for x in lines),
        "scalar_float_mul": sum(x.startswith("\tvmulss") for x in lines),
    }


def draws(function, arg, base: int, n: int) -> np.ndarray:
    blocks = n // BLOCK
    z = np.empty(BLOCK, np.float32)
    out = np.empty(blocks * BLOCK, np.float32)
    words = np.empty(WORDS + 2, np.uint64)
    for b in range(blocks):  # one block at a time, from words no other block uses
        start = (base + b * BLOCK * int(GAMMA)) % (1 << 64)
        function(z, words, arg, np.uint64(start), 1)
        out[b * BLOCK : (b + 1) * BLOCK] = z
    return out


def quality(values: np.ndarray) -> dict:
    x = values.astype(np.float64)
    mean, var = float(x.mean()), float(x.var())
    return {
        "mean": mean,
        "variance": var,
        "kurtosis": float(np.mean((x - mean) ** 4) / var**2),
        "ks": ks_distance(x),
        "max_abs": float(np.abs(x).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=1 << 22)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--draws", type=int, default=10_000_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine()
    info["numba_threads_used"] = 1

    table = normal_table().numpy()
    mant, h = fit_logpoly8()
    variants = {
        "today (hash + 4096-entry table)": (gen_today, table),
        "hash only (no mapping)": (gen_hash_only, table),
        "poly13 (odd polynomial of a 16-bit uniform)": (
            gen_poly13,
            np.append(fit_poly13(), [0.0, 0.0]).astype(np.float32),  # c1..c13, padding
        ),
        "logpoly8 (fast log2 + degree-8 polynomial)": (
            gen_logpoly8,
            np.concatenate([mant, h]).astype(np.float32),
        ),
        "irwin-hall4 (sum of 4 lanes + quintic, one hash per element)": (
            gen_irwin_hall4,
            fit_irwin_hall4().astype(np.float32),
        ),
    }
    base = stream_base(step_seed(7, 3), 0)
    blocks = args.numel // BLOCK
    z = np.empty(BLOCK, np.float32)
    words = np.empty(WORDS + 2, np.uint64)
    samples = {name: [] for name in variants}
    for round_index in range(args.rounds + 1):  # round 0 compiles
        for name, (function, arg) in variants.items():
            start = time.thread_time()
            function(z, words, arg, np.uint64(base), blocks)
            if round_index:
                samples[name].append((time.thread_time() - start) / (blocks * BLOCK) * 1e9)
    ns = {name: median(v) for name, v in samples.items()}

    results = {}
    for name, (function, arg) in variants.items():
        if name.startswith("hash only"):
            continue
        q = quality(draws(function, arg, stream_base(step_seed(11, 5), 2), args.draws))
        if name.startswith("poly13"):
            q["ks_exact_over_levels"] = ks_distance(poly13_levels(arg))
        elif name.startswith("logpoly8"):
            q["ks_exact_over_levels"] = ks_distance(logpoly8_levels(arg))
        elif name.startswith("today"):
            q["ks_exact_over_levels"] = ks_distance(table)
        results[name] = {"ns_per_element": ns[name], **q, "asm": vectorised(function)}
    results["hash only (no mapping)"] = {
        "ns_per_element": ns["hash only (no mapping)"],
        "asm": vectorised(gen_hash_only),
    }
    result = {
        "machine": info,
        "numel": blocks * BLOCK,
        "rounds": args.rounds,
        "draws": args.draws,
        "budget_ns_per_element": 0.06,
        "candidates": results,
        "samples_ns_per_element": samples,
        "fits": {"logpoly8_mantissa": mant.tolist(), "logpoly8_h": h.tolist()},
    }
    lines = [
        "## Cheaper normals? Cost and quality of candidate bits-to-normal mappings",
        "",
        f"Filling a 1024-element float32 block scratch, {blocks * BLOCK} elements per call, one "
        f"thread, thread CPU time, median of {args.rounds} interleaved rounds; quality over "
        f"{args.draws:.0e} draws (KS: Kolmogorov–Smirnov distance to N(0, 1); 'exact': over "
        "all output levels of the mapping, weighted equally). Budget per normal inside the "
        "update for 1.10x: about 0.06 ns.",
        "",
        "| mapping | ns/element | mean | variance | kurtosis | KS (draws) | KS (exact) | "
        "float multiplies in the asm: packed (of them 8/16-wide) / scalar |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "mean" not in r:
            cells = "— | — | — | — | —"
        else:
            exact = r.get("ks_exact_over_levels")
            cells = (
                f"{r['mean']:.1e} | {r['variance']:.4f} | {r['kurtosis']:.3f} | {r['ks']:.1e} | "
                + (f"{exact:.1e}" if exact is not None else "—")
            )
        a = r["asm"]
        lines.append(
            f"| {name} | {r['ns_per_element']:.3f} | {cells} | "
            f"{a['packed_float_mul']} ({a['packed_float_mul_8_or_16_wide']}) / "
            f"{a['scalar_float_mul']} |"
        )
    write("noise_candidates", result, lines)
    print("numba", numba.__version__)


if __name__ == "__main__":
    main()
