"""The optimizer-wide settings of a zeroth-order optimizer, as one frozen, typed value.

A param group holds what may differ between tensors (lr, weight decay, betas, ...); everything
that is one value for the whole optimizer lives in a :class:`ZerothOrderConfig` (or a subclass's
extension of it). The fields that define what the optimizer computes are saved in its
``state_dict`` (``state["zo"]["config"]``, the seed at ``state["zo"]["seed"]``) and win on load,
as saved param-group options do in torch; the others say how it runs (kernel, chunk size,
process group, what to do with a non-finite loss) and stay with the process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypedDict

from adamezo._checks import check_choice, check_float, check_int
from adamezo.collectives import ProcessGroupChoice, check_process_group
from adamezo.kernels import DEFAULT_CHUNK_SIZE, KernelChoice
from adamezo.noise import MASK64

NONFINITE_CHOICES = ("skip", "raise")
PERTURBATION_CHOICES = ("auto", "exact", "in_place")
"""How the closure is shown θ + cμz: perturbed copies (exact), θ itself moved (in place, rounded
at each move), or auto: exact when a trainable tensor is bfloat16 or float16."""

_RUNTIME = {"saved": False}
"""Field metadata: how the optimizer runs, not what it computes; not part of the saved config."""


class ZerothOrderOptions(TypedDict, total=False):
    """Keyword arguments every optimizer of the family accepts (see ZerothOrderOptimizer)."""

    perturbation_scale: float
    seed: int
    direction_seeds: int | None
    chunk_size: int
    kernel: KernelChoice
    nonfinite: str
    process_group: ProcessGroupChoice
    perturbation: str


@dataclass(frozen=True, kw_only=True)
class ZerothOrderConfig:
    """The settings shared by every optimizer of the family (see ZerothOrderOptimizer).

    A subclass that has optimizer-wide options of its own extends this dataclass with them and
    names it in its ``config_type``; ``__post_init__`` checks every field.
    """

    perturbation_scale: float = 1e-3
    direction_seeds: int | None = None
    seed: int = field(default=0, metadata=_RUNTIME)  # saved on its own, as state["zo"]["seed"]
    chunk_size: int = field(default=DEFAULT_CHUNK_SIZE, metadata=_RUNTIME)
    kernel: KernelChoice = field(default="auto", metadata=_RUNTIME)
    nonfinite: str = field(default="skip", metadata=_RUNTIME)
    process_group: ProcessGroupChoice = field(default=None, metadata=_RUNTIME)
    perturbation: str = "auto"

    def __post_init__(self) -> None:
        if self.direction_seeds is not None:
            self._set("direction_seeds", check_int("direction_seeds", self.direction_seeds, 1))
        scale = check_float("perturbation_scale", self.perturbation_scale, 0.0, min_open=True)
        self._set("perturbation_scale", scale)
        self._set("seed", int(check_int("seed", self.seed, 0, MASK64)))
        check_choice("nonfinite", self.nonfinite, NONFINITE_CHOICES)
        check_choice("perturbation", self.perturbation, PERTURBATION_CHOICES)
        check_int("chunk_size", self.chunk_size, 1)
        check_process_group(self.process_group)

    def _set(self, name: str, value: Any) -> None:
        """Store a checked (normalised) value while the frozen instance is being built."""
        object.__setattr__(self, name, value)

    def saved(self) -> dict[str, Any]:
        """The fields saved in ``state_dict()["zo"]["config"]``, by name, in field order."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("saved", True)
        }

    def restored(self, saved: dict[str, Any], seed: int) -> ZerothOrderConfig:
        """This config with the saved fields and seed of a loaded state in place of its own."""
        return dataclasses.replace(self, **saved, seed=seed)
