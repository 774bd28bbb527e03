"""The kernel interface: arguments checked once in the base class, noise_sq_sum optional."""

import pytest
import torch

from adamezo.kernels import FusedUpdate, Kernel, TorchKernel
from adamezo.noise import stream_base


class MinimalKernel(Kernel):
    """Only what a kernel must implement; the passes are the reference's."""

    name = "minimal"

    def __init__(self):
        self.reference = TorchKernel()
        self.calls = 0

    def supports(self, tensor):
        return tensor.dtype == torch.float32

    def _add_noise(self, tensor, base, scale, offset, dtype):
        self.calls += 1
        self.reference._add_noise(tensor, base, scale, offset, dtype)

    def _fused_update(self, tensor, bases, update, offset, dtype):
        self.calls += 1
        return self.reference._fused_update(tensor, bases, update, offset, dtype)


def test_noise_sq_sum_has_a_default_equal_to_the_reference():
    tensor = torch.zeros(3000)
    base = stream_base(7, 1)
    assert MinimalKernel().noise_sq_sum(tensor, base, 5) == TorchKernel().noise_sq_sum(
        tensor, base, 5
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda k, t: k.add_noise(t, -1, 1.0), ValueError, "base must be in"),
        (lambda k, t: k.add_noise(t.double(), 1, 1.0), ValueError, "does not support"),
        (
            lambda k, t: k.fused_update(t, [1, 2], FusedUpdate(0.0, (1.0,), None, 1, 0, 1, 0)),
            ValueError,
            "got 2 streams for 1 coefficients",
        ),
        (
            lambda k, t: k.fused_update(t, [1.5], FusedUpdate(0.0, (1.0,), None, 1, 0, 1, 0)),
            TypeError,
            "bases must be an int",
        ),
        (lambda k, t: k.noise_sq_sum(t, 2**64), ValueError, "base must be in"),
    ],
)
def test_arguments_are_checked_before_the_kernel_runs(call, error, match):
    kernel, tensor = MinimalKernel(), torch.zeros(4)
    with pytest.raises(error, match=match):
        call(kernel, tensor)
    assert kernel.calls == 0 and not tensor.any()
