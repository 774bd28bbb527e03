"""The optimizer-wide state of a zeroth-order optimizer (typed), and the checks of a saved state
against the optimizer it is loaded into."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import torch
from typing_extensions import NotRequired

from adamezo.collectives import local_shard


class ZerothOrderState(TypedDict):
    """The scalars one zeroth-order optimizer keeps besides its per-tensor buffers, saved as
    ``state_dict()["zo"]`` (plain Python values, so the format is the one saved before this type
    existed). Counters and last values are common to all; the optional keys belong to one
    optimizer each."""

    optimizer: str
    """The class name: a state loads only into the class that saved it."""
    config: dict[str, Any]
    """The saved fields of the optimizer's ZerothOrderConfig."""
    seed: int
    steps: int
    """Steps drawn, skipped ones included (seeds the directions)."""
    updates: int
    """Updates applied (t of the update formulas)."""
    skipped_steps: int
    forward_passes: int
    last_projected_grad: float | None
    last_update_norm: float | None
    last_loss: float | None
    history: NotRequired[list[list[float]]]
    """AdaMeZO: the last K (step, p) pairs, oldest first."""
    second_moment: NotRequired[float]
    """MEAZO: the running mean of p²."""
    momentum_basis: NotRequired[int | None]
    """LOZO-M: the interval k of the V its momentum factors are expressed in."""


ShapeOf = Callable[[str, torch.Tensor], tuple[int, ...]]
"""(buffer name, the parameter's local tensor) -> the shape that buffer must have."""


def check_state_shapes(
    state_dict: dict[str, Any],
    param_groups: Sequence[dict[str, Any]],
    shape_of: ShapeOf | None = None,
) -> None:
    """Raise ValueError unless every saved per-tensor buffer has the shape ``shape_of`` gives
    (default: its parameter's; torch's own check compares only the number of parameters per
    group)."""
    groups, state = state_dict.get("param_groups"), state_dict.get("state")
    if not isinstance(groups, list) or not isinstance(state, dict):
        raise ValueError("state_dict has no 'param_groups' list and 'state' dict")
    saved_ids = [i for g in groups if isinstance(g, dict) for i in g.get("params", ())]
    params = [p for g in param_groups for p in g["params"]]
    if len(saved_ids) != len(params):
        raise ValueError(
            f"state_dict holds {len(saved_ids)} parameters, the optimizer has {len(params)}"
        )
    for index, (saved_id, param) in enumerate(zip(saved_ids, params, strict=True)):
        local = local_shard(param)[0]
        for name, value in (state.get(saved_id) or {}).items():
            expected = tuple(local.shape) if shape_of is None else tuple(shape_of(name, local))
            if isinstance(value, torch.Tensor) and value.dim() and tuple(value.shape) != expected:
                wanted = "" if expected == tuple(local.shape) else f" (expected {expected})"
                raise ValueError(
                    f"state_dict: {name!r} of parameter {index} has shape "
                    f"{tuple(value.shape)}, the parameter {tuple(local.shape)}{wanted}; the "
                    "state was saved for other parameters"
                )


def check_saved_state(zo: Any, optimizer: str) -> dict[str, Any]:
    """The zeroth-order part of a state_dict (its ``"zo"`` entry), checked to have been saved by
    an optimizer of class ``optimizer``."""
    if not isinstance(zo, dict):
        raise ValueError("state_dict has no 'zo' entry: it was not saved by an adamezo optimizer")
    if zo.get("optimizer") != optimizer:
        raise ValueError(
            f"state_dict was saved by {zo.get('optimizer')!r}, cannot load it into {optimizer}"
        )
    return zo
