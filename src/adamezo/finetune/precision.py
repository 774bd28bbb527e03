"""Mixed precision: the forward passes under ``torch.autocast`` in bfloat16 or float16, while the
weights, the perturbation and the update stay in float32 (the master weights).

A zeroth-order step reads the model only through its forward passes, so autocast is all it takes:
no loss scaling (there is no backward pass whose gradients could underflow) and no second copy of
the weights. First-order Adam backpropagates, and float16 gradients would need loss scaling,
which the fine-tuning loop does not do: it takes ``bf16`` only.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext

import torch

from adamezo._checks import check_choice

MIXED_PRECISION = ("no", "bf16", "fp16")
"""``no``: all in the weights' dtype; ``bf16``/``fp16``: the forward passes under autocast."""
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(mixed_precision: str) -> torch.dtype | None:
    """The dtype the forward passes compute in under ``mixed_precision`` (None: no autocast)."""
    check_choice("mixed_precision", mixed_precision, MIXED_PRECISION)
    return AUTOCAST_DTYPES.get(mixed_precision)


def check_autocast(device_type: str, dtype: torch.dtype) -> None:
    """Raise ValueError unless this torch can autocast to ``dtype`` on ``device_type``: torch
    warns and silently turns autocast off for a pair it does not support, which would train in
    float32 while the run's config says otherwise."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type, dtype=dtype):
                enabled = torch.is_autocast_enabled(device_type)
        except (RuntimeError, ValueError) as error:
            enabled, caught = False, [str(error)]
    if not enabled:
        why = "; ".join(str(getattr(w, "message", w)) for w in caught) or "autocast stays off"
        raise ValueError(
            f"mixed_precision: torch {torch.__version__} cannot autocast to {dtype} on "
            f"{device_type!r} ({why}); choose one of {list(MIXED_PRECISION)} that it can, "
            "e.g. 'no'"
        )


def check_mixed_precision(
    mixed_precision: str, *, dtype: str, device: str | None, zeroth_order: bool
) -> None:
    """Raise ValueError naming ``mixed_precision`` for a value this run cannot use: one outside
    :data:`MIXED_PRECISION`, autocast with weights not in float32 (mixed precision means float32
    master weights), float16 with backprop, or a dtype torch cannot autocast to on ``device``
    (default: cuda if available, else cpu)."""
    target = autocast_dtype(mixed_precision)
    if target is None:
        return
    if dtype != "float32":
        raise ValueError(
            f"mixed_precision={mixed_precision!r} keeps float32 master weights: it needs "
            f"dtype='float32', got dtype={dtype!r} (use mixed_precision='no' with {dtype} weights)"
        )
    if mixed_precision == "fp16" and not zeroth_order:
        raise ValueError(
            "mixed_precision='fp16' with a first-order optimizer would need loss scaling, which "
            "the fine-tuning loop does not do: use mixed_precision='bf16'"
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_autocast(torch.device(device).type, target)


def forward_precision(
    device_type: str, dtype: torch.dtype | None
) -> AbstractContextManager[object]:
    """The context a forward pass runs in: autocast to ``dtype`` on ``device_type``, or nothing
    when ``dtype`` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type, dtype=dtype)
