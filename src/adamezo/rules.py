"""Update-rule arithmetic on scalars: the weights and coefficients of docs/algorithms.md §2–5.

These are pure functions of the projected-gradient history; optimizers turn their results into
:class:`adamezo.kernels.FusedUpdate` coefficients. Nothing here touches a tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def truncated_ema_weights(beta: float, n: int, normalize: bool = True) -> tuple[float, ...]:
    """Weights w_k, k = 0 (newest) … n−1, of a truncated exponential moving average.

    normalize=True:  w_k = (1−β) β^k / (1 − β^n), which sums to one (β = 1 gives w_k = 1/n).
    normalize=False: w_k = β^k (with 0^0 = 1, so β = 0 keeps only the newest term).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not normalize:
        return tuple(beta**k for k in range(n))
    if beta == 1.0:
        return (1.0 / n,) * n
    total = 1.0 - beta**n
    return tuple((1.0 - beta) * beta**k / total for k in range(n))


def adamezo_coefficients(
    projected_grads: Sequence[float],
    betas: tuple[float, float],
    normalize: bool = True,
) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """Coefficients of m_t = Σ_k a_k p_{t−k} z_{t−k} and v_t = Σ_k b_k p_{t−k}² z_{t−k}².

    ``projected_grads`` lists p_t, p_{t−1}, … newest first. Returns (a_k p_k, b_k p_k²); the
    second is None when β₂ = 0, which by docs/algorithms.md §3 means no second moment (u = gain·m).
    """
    n = len(projected_grads)
    a = truncated_ema_weights(betas[0], n, normalize)
    m_coefs = tuple(w * p for w, p in zip(a, projected_grads, strict=True))
    if betas[1] == 0.0:
        return m_coefs, None
    b = truncated_ema_weights(betas[1], n, normalize)
    v_coefs = tuple(w * p * p for w, p in zip(b, projected_grads, strict=True))
    return m_coefs, v_coefs


def ema(average: float, value: float, beta: float) -> float:
    """β·average + (1−β)·value."""
    return beta * average + (1.0 - beta) * value


def bias_correction(beta: float, updates: int) -> float:
    """1 − β^(t+1) for the update with index t = ``updates`` (0 for the first)."""
    return 1.0 - beta ** (updates + 1)


def normalised_one_sided(losses: Sequence[float]) -> tuple[float, ...]:
    """FZOO's coefficients c_j = (ℓ_j − ℓ⁰) / (N σ) of its N Rademacher directions.

    ``losses`` is (ℓ⁰, ℓ_1, …, ℓ_N): the clean pass, then the N one-sided queries. σ is the
    population standard deviation of ℓ_1 … ℓ_N. When σ = 0 (the queries all returned the same
    loss, which says nothing about which way is down) every c_j is 0.
    """
    clean, perturbed = losses[0], losses[1:]
    n = len(perturbed)
    if n < 2:
        raise ValueError(f"normalised_one_sided needs at least two queries, got {n}")
    mean = math.fsum(perturbed) / n
    sigma = math.sqrt(math.fsum((loss - mean) ** 2 for loss in perturbed) / n)
    if sigma == 0.0:
        return (0.0,) * n
    return tuple((loss - clean) / (n * sigma) for loss in perturbed)
