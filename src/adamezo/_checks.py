"""Argument checks that name the argument and its allowed range in the error."""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any


def _range_text(
    minimum: float | None, maximum: float | None, min_open: bool, max_open: bool
) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if min_open else '['}{minimum:g}, {maximum:g}{')' if max_open else ']'}"
    if minimum is not None:
        return f"{'>' if min_open else '>='} {minimum:g}"
    if maximum is not None:
        return f"{'<' if max_open else '<='} {maximum:g}"
    return "finite"


def check_float(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    min_open: bool = False,
    max_open: bool = False,
) -> float:
    """``value`` as a finite float within the bounds, else TypeError/ValueError naming ``name``."""
    allowed = _range_text(minimum, maximum, min_open, max_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number {allowed}, got {type(value).__name__}")
    result = float(value)
    too_low = minimum is not None and (result <= minimum if min_open else result < minimum)
    too_high = maximum is not None and (result >= maximum if max_open else result > maximum)
    if not math.isfinite(result):
        finite = "finite" if allowed == "finite" else f"finite and {allowed}"
        raise ValueError(f"{name} must be {finite}, got {value!r}")
    if too_low or too_high:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return result


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within the bounds, else TypeError/ValueError naming ``name``."""
    allowed = _range_text(minimum, maximum, False, False)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int {allowed}, got {type(value).__name__}")
    result = int(value)
    if (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        raise ValueError(f"{name} must be an int {allowed}, got {value!r}")
    return result


def check_betas(
    name: str, value: Any, count: int = 2, *, max_open: bool = False
) -> tuple[float, ...]:
    """A tuple of ``count`` floats, each in [0, 1] (or [0, 1) with ``max_open``)."""
    allowed = _range_text(0.0, 1.0, False, max_open)
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection) or len(value) != count:
        raise TypeError(f"{name} must be a tuple of {count} floats {allowed}, got {value!r}")
    return tuple(
        check_float(f"{name}[{i}]", b, 0.0, 1.0, max_open=max_open) for i, b in enumerate(value)
    )


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if value not in choices:
        allowed = ", ".join(sorted(repr(c) for c in choices))
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value
