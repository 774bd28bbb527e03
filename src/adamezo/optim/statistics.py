"""What a zeroth-order optimizer reports after each step: its counters and last values."""

from __future__ import annotations

from adamezo.optim.state import ZerothOrderState


class StepStatistics:
    """Read-only views of the step counters and last values a zeroth-order optimizer keeps in
    its state (``self._zo``, saved by ``state_dict``), and :meth:`metrics` to log them."""

    _zo: ZerothOrderState
    _last_losses: tuple[float, ...] | None = None

    @property
    def last_losses(self) -> tuple[float, ...] | None:
        """The closure's values at the last step, one per pass (``passes``), after the average
        over processes: with the step count they determine the update (see adamezo.replay)."""
        return self._last_losses

    @property
    def last_projected_grad(self) -> float | None:
        """p_t of the last applied update (None before the first)."""
        return self._zo["last_projected_grad"]

    @property
    def last_update_norm(self) -> float | None:
        """‖θ_{t+1} − θ_t‖₂ over all trainable tensors for the last applied update."""
        return self._zo["last_update_norm"]

    @property
    def last_loss(self) -> float | None:
        """(ℓ⁺ + ℓ⁻)/2 of the last step, skipped or not."""
        return self._zo["last_loss"]

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because the loss was not finite."""
        return self._zo["skipped_steps"]

    @property
    def num_steps(self) -> int:
        """Steps taken, skipped ones included."""
        return self._zo["steps"]

    @property
    def num_updates(self) -> int:
        """Updates applied (steps minus skipped steps)."""
        return self._zo["updates"]

    @property
    def forward_passes(self) -> int:
        """Closure evaluations so far: the cost measure of zeroth-order training."""
        return self._zo["forward_passes"]

    def metrics(self) -> dict[str, float | int | None]:
        """The numbers worth logging after a step, in one dict."""
        return {
            "loss": self.last_loss,
            "projected_grad": self.last_projected_grad,
            "update_norm": self.last_update_norm,
            "steps": self.num_steps,
            "updates": self.num_updates,
            "skipped_steps": self.skipped_steps,
            "forward_passes": self.forward_passes,
        }
