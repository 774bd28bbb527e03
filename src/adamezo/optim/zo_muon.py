"""ZO-Muon: queries in a random column-orthonormal subspace per matrix, the subspace gradient
estimate orthogonalised by Newton-Schulz and lifted back (docs/algorithms.md §12)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from typing_extensions import Unpack

from adamezo._checks import check_float, check_int
from adamezo.kernels.lowrank import Factors, matrix_shape
from adamezo.noise import query_seed, step_seed
from adamezo.optim.base import (
    ParamsT,
    StepContext,
    TensorSlot,
    ZerothOrderOptions,
)
from adamezo.optim.estimators import OneSided
from adamezo.optim.low_rank import LowRankConfig, LowRankOptimizer, NewState

PROJECTION_QUERY = (1 << 32) + 1
"""The query index whose seed draws the Gaussian matrix P is made from (apart from every Ψ, z
and LOZO's V)."""

NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
"""(a, b, c) of the quintic iteration X ← a X + (b A + c A²) X, A = X Xᵀ (Muon's)."""
NEWTON_SCHULZ_STEPS = 5


@dataclass(frozen=True, kw_only=True)
class ZOMuonConfig(LowRankConfig):
    """ZO-Muon's optimizer-wide settings: r, q, the resampling interval and ρ."""

    rank: int = 64
    queries: int = 4
    resample_interval: int = 100
    vector_lr_scale: float = 1e-5


def orthogonalise(g: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """Muon's Newton-Schulz approximation of the orthogonal polar factor of ``g`` (its singular
    values pushed towards 1), in ``g``'s dtype: g / (‖g‖_F + 1e-7), then ``steps`` quintic
    iterations on the wide orientation."""
    a, b, c = NEWTON_SCHULZ
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / (torch.linalg.matrix_norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class ZOMuon(LowRankOptimizer):
    """ZO-Muon (Lang et al., 2026): a low-rank Muon step from zeroth-order queries.

    Each weight matrix W (m × n; more dimensions are viewed as shape[0] × the rest) has a
    column-orthonormal P (m × r', r' = min(r, m)), the Q of a QR factorisation of a Gaussian
    matrix (signs fixed by R's diagonal), redrawn every ``resample_interval`` steps. A step takes
    a clean pass ℓ⁰ = L(θ) and q one-sided queries ℓ_j = L(θ + μ P Ψ_j) (Ψ_j: r' × n Gaussian;
    one-dimensional tensors move along a Gaussian z_j), p_j = (ℓ_j − ℓ⁰)/μ, then per matrix::

        G = (1/q) Σ_j p_j Ψ_j,    O = NewtonSchulz(G),    θ ← θ − η (P O + λ θ)

    and for one-dimensional tensors the plain average θ ← θ − η ρ ((1/q) Σ_j p_j z_j + λ θ) with
    ρ = ``vector_lr_scale`` (the published code steps them with a fixed 1e-7 at η = 1e-2).
    ``step`` returns ℓ⁰. P is never stored: G is drawn again from the seed whenever P is needed
    and P = G·T, where only the r' × r' triangle T of G's QR factorisation is cached for the
    interval (regenerated from the seed after a resume, never saved).

    Args:
        rank: r ≥ 1 (default 64, the published code's).
        queries: q ≥ 1 (default 4).
        resample_interval: steps between draws of P, ≥ 1 (default 100).
        vector_lr_scale: ρ ≥ 0 (default 1e-5).

    See :class:`~adamezo.optim.base.ZerothOrderOptimizer` for the shared arguments.
    """

    config_type = ZOMuonConfig
    config: ZOMuonConfig

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        *,
        rank: int = 64,
        queries: int = 4,
        resample_interval: int = 100,
        vector_lr_scale: float = 1e-5,
        weight_decay: float = 0.0,
        **options: Unpack[ZerothOrderOptions],
    ) -> None:
        self._triangles: dict[int, tuple[int, torch.Tensor]] = {}
        checked = {
            "queries": check_int("queries", queries, 1),
            "resample_interval": check_int("resample_interval", resample_interval, 1),
            "vector_lr_scale": check_float("vector_lr_scale", vector_lr_scale, 0.0),
        }
        super().__init__(params, lr, weight_decay, rank, options, checked)

    @property
    def estimator(self) -> OneSided:  # type: ignore[override]
        return OneSided(queries=self.config.queries)

    @property
    def queries(self) -> int:
        return self.config.queries

    @property
    def cache_bytes(self) -> int:
        """Bytes held outside ``state_dict``: the cached r' × r' triangles T (P itself is never
        kept, see :meth:`projection`)."""
        return sum(t.numel() * t.element_size() for _, t in self._triangles.values())

    def _gaussian(self, slot: TensorSlot, window: int) -> torch.Tensor:
        """The Gaussian matrix G (m × r', compute dtype) that P of interval ``window`` is made
        from, drawn from the seed."""
        rows = matrix_shape(slot.tensor)[0]
        seed = query_seed(step_seed(self.seed, window), PROJECTION_QUERY)
        return self._draw(slot, seed, rows, min(self.rank, rows))

    def _triangle(self, slot: TensorSlot, window: int, gaussian: torch.Tensor) -> torch.Tensor:
        """T = R⁻¹·diag(sign(diag R)) of G = QR (r' × r', compute dtype), cached per interval."""
        cached = self._triangles.get(slot.key)
        if cached is not None and cached[0] == window:
            return cached[1]
        r = torch.linalg.qr(gaussian.double(), mode="r")[1]
        # Q·sign(diag R) is Haar-distributed; a zero diagonal (probability 0) keeps its sign +1.
        signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(r.dtype)
        eye = torch.eye(r.shape[0], dtype=r.dtype, device=r.device)
        triangle = (torch.linalg.solve_triangular(r, eye, upper=True) * signs).to(gaussian.dtype)
        self._triangles[slot.key] = (window, triangle)
        return triangle

    def projection(self, slot: TensorSlot, step: int) -> torch.Tensor:
        """P of ``slot``'s matrix for the interval holding ``step`` (m × r', compute dtype).

        P = Q·sign(diag R) for the QR factorisation G = QR of the interval's Gaussian G, formed
        as G·T with T = R⁻¹·diag(sign(diag R)): G is drawn again from the seed at every use and
        only the small T is kept, so the memory held is r'² values per matrix instead of m·r'."""
        window = step // self.config.resample_interval
        gaussian = self._gaussian(slot, window)
        return gaussian @ self._triangle(slot, window, gaussian)

    def _subspace_noise(self, slot: TensorSlot, step: int, query: int, rank: int) -> torch.Tensor:
        """Ψ_jᵀ: n × r' (row-major), so that the direction is P Ψ_j = P (Ψ_jᵀ)ᵀ."""
        cols = matrix_shape(slot.tensor)[1]
        return self._draw(slot, self._query_seed(step, query), cols, rank)

    def _factors(self, slot: TensorSlot, step: int, query: int) -> Factors:
        projection = self.projection(slot, step)
        return projection, self._subspace_noise(slot, step, query, projection.shape[1])

    def _switch_factors(self, slot: TensorSlot, step: int, old: int, new: int) -> Factors:
        """(P, Ψ_newᵀ − Ψ_oldᵀ): the move from query ``old`` to ``new`` as one product."""
        projection = self.projection(slot, step)
        rank = projection.shape[1]
        difference = self._subspace_noise(slot, step, new, rank)
        return projection, difference.sub_(self._subspace_noise(slot, step, old, rank))

    def _matrix_update(
        self, context: StepContext, slot: TensorSlot, new_state: NewState
    ) -> float | torch.Tensor:
        grads, q = context.projected_grads, len(context.projected_grads)
        projection = self.projection(slot, context.step)
        rank = projection.shape[1]
        noises = [self._subspace_noise(slot, context.step, j, rank) for j in range(q)]
        estimate = sum(grads[j] / q * noises[j] for j in range(q))  # n × r', Gᵀ
        lifted = orthogonalise(estimate.T).T  # Oᵀ: n × r'
        restore = ((projection, noises[context.query]), self._restore_scale(context))
        return self.low_rank_directions.update(slot, restore, ((projection, lifted), 1.0))

    def _vector_update(
        self, context: StepContext, slot: TensorSlot, new_state: NewState
    ) -> float | torch.Tensor:
        """(1/q) Σ_j p_j z_j at the step size η ρ, fused with the restore by the kernel."""
        grads = context.projected_grads
        coefficients = {j: g / len(grads) for j, g in enumerate(grads)}
        return self._vector_sgd(context, slot, coefficients, self.config.vector_lr_scale)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._triangles.clear()  # the saved seed may differ: draw P again
