"""Low-rank directions D = A·Bᵀ applied to a weight matrix, row block by row block.

A low-rank method perturbs an m × n matrix along D = A Bᵀ (A: m × r, B: n × r, r small) instead of
a full Gaussian z, so its noise costs (m + n)·r normals per pass in place of m·n hashes, and the
pass itself is a rank-r product. Everything here follows one operation order, in the compute dtype
(float64 for float64 tensors, float32 otherwise)::

    D  = A Bᵀ: for r ≤ INLINE_RANK, element by element, a_i0·b_j0 + a_i1·b_j1 + … left to right
              (each product and sum rounded once); for larger r, BLAS (torch.mm) on row blocks
    perturb:  θ' = θ + scale·D                           scale rounded once, product rounded once
    update:   t  = θ + restore·D_r                       (skipped when restore = 0)
              u  = coef·D_u                              (D_u is D_r when the factors are the same)
              θ' = t − lr·(u + weight_decay·t)

and θ' is rounded once to the storage dtype. :class:`ProductPasses` runs it in plain torch on any
device, row block by row block (at most ``chunk_size`` elements, one row at least, so the working
memory stays bounded); a kernel may have compiled ones (numba on the CPU: the small-rank products
computed row by row inside one multithreaded sweep, no block buffers), bitwise the same values.
The same order everywhere makes a perturbation, its undo and the update reproducible bit for bit
on one machine and thread count; the float64 reference in the tests checks the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from adamezo.kernels.base import Kernel, compute_dtype
from adamezo.kernels.reference import round_scalar, store_rounded
from adamezo.noise import normal

BLOCK = 1 << 18
"""Most elements per row block (``chunk_size`` if smaller), 1 MiB of float32 per product buffer.
Measured on the build machine (one thread, loaded, rank 64, the 211 matrices of SmolLM2-135M): a
compiled perturbation pass took 1.2–1.3 s with 2¹⁶-element blocks, 0.99–1.1 s with 2¹⁸ and
0.92–0.98 s with 2²⁰; larger blocks make BLAS's products more efficient and mean fewer calls."""

INLINE_RANK = 8
"""Largest r whose product is summed element by element rather than by BLAS: a compiled sweep
then reads each weight once and no BLAS call is made. Measured on the build machine (one thread,
134.5 M weights in 1536 × 576 matrices): 0.07 s per pass at r = 2 and 0.30 s at r = 8 against
0.11 s and 0.23 s for torch's addmm_; at r = 16, 0.66 s against 0.23 s."""

Factors = tuple[torch.Tensor, torch.Tensor]
"""(A, B) of a direction A·Bᵀ: A is rows × r, B is cols × r, both in the compute dtype."""


@dataclass(frozen=True)
class ProductUpdate:
    """One matrix's restore-and-update (module docstring), every scalar already rounded to the
    compute dtype: restore along ``restore_factors`` by ``restore`` (none when the factors are
    None), then the update ``coef``·A_u B_uᵀ at ``lr`` and ``weight_decay``."""

    restore_factors: Factors | None
    restore: float
    factors: Factors
    coef: float
    lr: float
    weight_decay: float

    @property
    def same(self) -> bool:
        """Whether the update's product is the restore's (the same factor tensors)."""
        restored = self.restore_factors
        return restored is not None and all(
            x is y for x, y in zip(restored, self.factors, strict=True)
        )


def is_matrix(tensor: torch.Tensor) -> bool:
    """Whether a low-rank method treats ``tensor`` as a matrix: two or more dimensions, viewed as
    shape[0] × (the product of the others)."""
    return tensor.dim() >= 2


def matrix_shape(tensor: torch.Tensor) -> tuple[int, int]:
    """(rows, cols) of the matrix view of ``tensor``."""
    rows = tensor.shape[0]
    return rows, (tensor.numel() // rows if rows else 0)


def gaussian_factor(
    base: int,
    rows: int,
    rank: int,
    device: torch.device,
    dtype: torch.dtype,
    kernel: Kernel | None = None,
) -> torch.Tensor:
    """A rows × rank matrix of the stream ``base`` (row-major: element (i, k) is z[i·rank + k]).

    With ``kernel`` the values are drawn by its noise pass, 0 + 1·z = z exactly (a compiled
    kernel draws them several times faster than :func:`adamezo.noise.normal`, bitwise the same)."""
    values = torch.zeros(rows * rank, dtype=torch.float32, device=device)
    if kernel is not None and kernel.supports(values):
        kernel.add_noise(values, base, 1.0)
    else:
        values = normal(base, rows * rank, 0, device)
    return values.view(rows, rank).to(dtype)


def block_product(factors: Factors, where: slice, out: torch.Tensor) -> torch.Tensor:
    """Rows ``where`` of A Bᵀ into ``out`` (a rows × cols buffer), in the module's order."""
    a, b = factors
    a = a[where]
    if a.shape[1] > INLINE_RANK:
        return torch.mm(a, b.T, out=out)
    torch.mul(a[:, :1], b[:, 0], out=out)
    for k in range(1, a.shape[1]):
        out.add_(a[:, k : k + 1] * b[:, k])
    return out


class RowBlocks:
    """The row blocks of one matrix (at most ``min(chunk_size, BLOCK)`` elements, one row at
    least) and ``buffers`` reusable product buffers of one block each."""

    def __init__(self, tensor: torch.Tensor, chunk_size: int, dtype: torch.dtype, buffers: int):
        self.rows, self.cols = matrix_shape(tensor)
        self.step = max(1, min(chunk_size, BLOCK) // max(self.cols, 1))
        size, device = (min(self.step, self.rows), self.cols), tensor.device
        self.buffers = [torch.empty(size, dtype=dtype, device=device) for _ in range(buffers)]

    def __iter__(self) -> Iterator[slice]:
        for start in range(0, self.rows, self.step):
            yield slice(start, min(self.rows, start + self.step))

    def product(self, index: int, factors: Factors, where: slice) -> torch.Tensor:
        """Rows ``where`` of A Bᵀ in buffer ``index`` (its leading rows)."""
        return block_product(factors, where, self.buffers[index][: where.stop - where.start])


class ProductPasses:
    """The passes of the module docstring in plain torch, row block by row block: the reference
    every compiled implementation matches bit for bit. Scalars arrive rounded to the compute
    dtype; ``out``, ``source`` and ``tensor`` are contiguous tensors in the storage dtype."""

    def add(
        self,
        out: torch.Tensor,
        source: torch.Tensor,
        factors: Factors,
        scale: float,
        chunk_size: int,
    ) -> None:
        """out ← round(source + scale·A Bᵀ); ``out`` may be ``source``."""
        inline = factors[0].shape[1] <= INLINE_RANK and source.numel() > 0
        if inline and self.add_inline(out, source, factors, scale):
            return
        blocks = RowBlocks(source, chunk_size, factors[0].dtype, 1)
        into = out.view(blocks.rows, blocks.cols)
        read = source.view(blocks.rows, blocks.cols)
        for where in blocks:
            self.sweep_add(into[where], read[where], blocks.product(0, factors, where), scale)

    def update(
        self, tensor: torch.Tensor, spec: ProductUpdate, chunk_size: int
    ) -> float | torch.Tensor:
        """The restore-and-update in place; Σ(θ' − t)², possibly a 0-dim float64 tensor on the
        tensor's device (read it once per step)."""
        if spec.factors[0].shape[1] <= INLINE_RANK and tensor.numel() > 0:
            total = self.update_inline(tensor, spec)
            if total is not None:
                return total
        restored, same = spec.restore_factors, spec.same
        buffers = 1 if restored is None or same else 2
        blocks = RowBlocks(tensor, chunk_size, compute_dtype(tensor.dtype), buffers)
        view = tensor.view(blocks.rows, blocks.cols)
        sq_sum: float | torch.Tensor = 0.0
        for where in blocks:
            d_r = None if restored is None else blocks.product(0, restored, where)
            d_u = d_r if same else blocks.product(buffers - 1, spec.factors, where)
            assert d_u is not None
            sq_sum += self.sweep_update(view[where], d_r, d_u, spec)
        return sq_sum

    def add_inline(
        self, out: torch.Tensor, source: torch.Tensor, factors: Factors, scale: float
    ) -> bool:
        """:meth:`add` for r ≤ INLINE_RANK in one sweep, if this implementation has one
        (returns whether it ran; here it has none, and the blocks below do it)."""
        return False

    def update_inline(self, tensor: torch.Tensor, spec: ProductUpdate) -> float | None:
        """:meth:`update` for r ≤ INLINE_RANK in one sweep, if this implementation has one
        (returns Σ(θ' − t)², or None when it has none)."""
        return None

    def sweep_add(
        self, out: torch.Tensor, source: torch.Tensor, d: torch.Tensor, scale: float
    ) -> None:
        """One block of :meth:`add` after its product ``d`` (which it may overwrite)."""
        d.mul_(scale)
        if source.dtype == d.dtype:
            torch.add(source, d, out=out)
        else:
            store_rounded(out, source.to(d.dtype).add_(d))

    def sweep_update(
        self, block: torch.Tensor, d_r: torch.Tensor | None, d_u: torch.Tensor, spec: ProductUpdate
    ) -> float | torch.Tensor:
        """One block of :meth:`update` after its products (``d_u`` may be ``d_r``)."""
        t = block.to(d_u.dtype, copy=True)
        if d_r is not None:
            t.add_(d_r * spec.restore)
        step = t * spec.weight_decay
        step.add_(d_u.mul_(spec.coef)).mul_(spec.lr)
        new = t.sub(step)
        sq_sum = new.sub(t).double().square().sum()
        store_rounded(block, new)
        return sq_sum


TORCH_PASSES = ProductPasses()


def passes_for(kernel: Kernel | None) -> ProductPasses:
    """``kernel``'s compiled :class:`ProductPasses` if it has them, else the plain-torch ones."""
    compiled = None if kernel is None else kernel.product_passes()
    return TORCH_PASSES if compiled is None else compiled


def add_lowrank(
    tensor: torch.Tensor,
    factors: Factors,
    scale: float,
    chunk_size: int,
    passes: ProductPasses = TORCH_PASSES,
) -> None:
    """θ ← round(θ + scale·A Bᵀ) in place."""
    passes.add(tensor, tensor, factors, round_scalar(scale, factors[0].dtype), chunk_size)


def lowrank_copy(
    tensor: torch.Tensor,
    factors: Factors,
    scale: float,
    chunk_size: int,
    passes: ProductPasses = TORCH_PASSES,
) -> torch.Tensor:
    """A new tensor round(θ + scale·A Bᵀ), bitwise what :func:`add_lowrank` leaves in θ; one
    sweep (read θ, write the copy)."""
    copy = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    scale = round_scalar(scale, factors[0].dtype)
    passes.add(copy, tensor.detach(), factors, scale, chunk_size)
    return copy


def lowrank_update(
    tensor: torch.Tensor,
    restore: tuple[Factors, float] | None,
    update: tuple[Factors, float],
    lr: float,
    weight_decay: float,
    chunk_size: int,
    passes: ProductPasses = TORCH_PASSES,
) -> float | torch.Tensor:
    """The restore-and-update of the module docstring, in place; returns Σ(θ' − t)² (float64,
    possibly a 0-dim tensor on the tensor's device, see :class:`~adamezo.kernels.DeferredSum`).

    ``restore`` is ((A_r, B_r), restore) or None when θ was never moved; ``update`` is
    ((A_u, B_u), coef)."""
    dtype = compute_dtype(tensor.dtype)
    moved = restore is not None and restore[1] != 0.0
    spec = ProductUpdate(
        restore_factors=restore[0] if moved else None,
        restore=round_scalar(restore[1], dtype) if moved else 0.0,
        factors=update[0],
        coef=round_scalar(update[1], dtype),
        lr=round_scalar(lr, dtype),
        weight_decay=round_scalar(weight_decay, dtype),
    )
    return passes.update(tensor, spec, chunk_size)
