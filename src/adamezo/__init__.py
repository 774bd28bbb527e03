"""adamezo: memory-free adaptive zeroth-order optimizers, fine-tuning with forward passes only."""

from adamezo.optim import (
    FZOO,
    MEAZO,
    AdaMeZO,
    HiZOO,
    MeZO,
    MeZOSwitch,
    NonFiniteLossError,
    ZerothOrderOptimizer,
    ZOAdam,
)

__version__ = "0.1.0"

__all__ = [
    "FZOO",
    "MEAZO",
    "AdaMeZO",
    "HiZOO",
    "MeZO",
    "MeZOSwitch",
    "NonFiniteLossError",
    "ZOAdam",
    "ZerothOrderOptimizer",
    "__version__",
]
