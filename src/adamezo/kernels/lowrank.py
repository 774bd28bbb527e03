"""Low-rank directions D = A·Bᵀ applied to a weight matrix row block by row block with BLAS.

A low-rank method perturbs an m × n matrix along D = A Bᵀ (A: m × r, B: n × r, r small) instead of
a full Gaussian z, so its noise costs (m + n)·r normals and one rank-r matrix product per pass in
place of m·n hashes. Every function here works on row blocks of at most ``chunk_size`` elements
(one row at least), so the working memory stays bounded, and follows one operation order, in the
compute dtype (float64 for float64 tensors, float32 otherwise)::

    D_blk = A_blk @ Bᵀ                                   BLAS, the factors in the compute dtype
    perturb:  θ' = θ + scale·D                           scale rounded once, product rounded once
    update:   t  = θ + restore·D_r                       (skipped when restore = 0)
              u  = coef·(A_u Bᵀ_u)                       (the same D when A_u, B_u are A_r, B_r)
              θ' = t − lr·(u + weight_decay·t)

and θ' is rounded once to the storage dtype. The same blocks and order everywhere make a
perturbation, its undo and the update reproducible bit for bit on one machine and thread count;
the float64 reference in the tests checks the arithmetic to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from adamezo.kernels.base import compute_dtype
from adamezo.kernels.reference import add_in_compute_dtype, round_scalar
from adamezo.noise import normal

Factors = tuple[torch.Tensor, torch.Tensor]
"""(A, B) of a direction A·Bᵀ: A is rows × r, B is cols × r, both in the compute dtype."""


def is_matrix(tensor: torch.Tensor) -> bool:
    """Whether a low-rank method treats ``tensor`` as a matrix: two or more dimensions, viewed as
    shape[0] × (the product of the others)."""
    return tensor.dim() >= 2


def matrix_shape(tensor: torch.Tensor) -> tuple[int, int]:
    """(rows, cols) of the matrix view of ``tensor``."""
    rows = tensor.shape[0]
    return rows, (tensor.numel() // rows if rows else 0)


def gaussian_factor(
    base: int, rows: int, rank: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """A rows × rank matrix of the stream ``base`` (row-major: element (i, k) is z[i·rank + k])."""
    return normal(base, rows * rank, 0, device).view(rows, rank).to(dtype)


def _row_blocks(tensor: torch.Tensor, chunk_size: int) -> Iterator[tuple[slice, torch.Tensor]]:
    rows, cols = matrix_shape(tensor)
    view = tensor.view(rows, cols)
    step = max(1, chunk_size // max(cols, 1))
    for start in range(0, rows, step):
        where = slice(start, min(rows, start + step))
        yield where, view[where]


def add_lowrank(tensor: torch.Tensor, factors: Factors, scale: float, chunk_size: int) -> None:
    """θ ← round(θ + scale·A Bᵀ) in place."""
    a, b = factors
    scale = round_scalar(scale, a.dtype)
    for where, block in _row_blocks(tensor, chunk_size):
        add_in_compute_dtype(block, (a[where] @ b.T).mul_(scale))


def lowrank_copy(
    tensor: torch.Tensor, factors: Factors, scale: float, chunk_size: int
) -> torch.Tensor:
    """A new tensor round(θ + scale·A Bᵀ), bitwise what :func:`add_lowrank` leaves in θ."""
    copy = tensor.detach().clone()
    add_lowrank(copy, factors, scale, chunk_size)
    return copy


def lowrank_update(
    tensor: torch.Tensor,
    restore: tuple[Factors, float] | None,
    update: tuple[Factors, float],
    lr: float,
    weight_decay: float,
    chunk_size: int,
) -> float:
    """The restore-and-update of the module docstring, in place; returns Σ(θ' − t)² (float64).

    ``restore`` is ((A_r, B_r), restore) or None when θ was never moved; ``update`` is
    ((A_u, B_u), coef)."""
    (a_u, b_u), coef = update
    dtype = compute_dtype(tensor.dtype)
    coef, lr = round_scalar(coef, dtype), round_scalar(lr, dtype)
    weight_decay = round_scalar(weight_decay, dtype)
    same = restore is not None and restore[0][0] is a_u and restore[0][1] is b_u
    sq_sum = 0.0
    for where, block in _row_blocks(tensor, chunk_size):
        t = block.to(dtype, copy=True)
        d = None
        if restore is not None and restore[1] != 0.0:
            (a_r, b_r), scale = restore
            d = a_r[where] @ b_r.T
            t.add_(d * round_scalar(scale, dtype))
        u = d if same and d is not None else a_u[where] @ b_u.T
        step = t * weight_decay
        step.add_(u.mul_(coef)).mul_(lr)
        new = t.sub(step)
        sq_sum += float(new.sub(t).double().square().sum())
        block.copy_(new)
    return sq_sum
