"""The largest tensor torch allocates while some code runs: how the tests and the memory benchmark
check that an optimizer's step never makes a model-sized buffer (on any device, which the process's
resident set cannot show)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LargestAllocation(TorchDispatchMode):
    """While active, records the largest tensor any torch operation returns that does not share
    storage with one of its inputs (views and in-place results do not count)::

        with LargestAllocation() as seen:
            optimizer.step(closure)
        seen.elements, seen.bytes   # of the largest new tensor (0, 0 if none)
    """

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0
        """Elements of the largest new tensor."""
        self.bytes = 0
        """Bytes of the largest new tensor (elements × element size)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.elements = max(self.elements, t.numel())
                self.bytes = max(self.bytes, t.numel() * t.element_size())
        return out
