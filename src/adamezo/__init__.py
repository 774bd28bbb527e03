"""adamezo: memory-free adaptive zeroth-order optimizers, fine-tuning with forward passes only."""

from adamezo.optim import (
    FZOO,
    LOZO,
    MEAZO,
    AdaMeZO,
    HiZOO,
    MeZO,
    MeZOSwitch,
    NonFiniteLossError,
    ZerothOrderOptimizer,
    ZOAdam,
    ZOMuon,
)

__version__ = "0.1.0"

__all__ = [
    "FZOO",
    "LOZO",
    "MEAZO",
    "AdaMeZO",
    "HiZOO",
    "MeZO",
    "MeZOSwitch",
    "NonFiniteLossError",
    "ZOAdam",
    "ZOMuon",
    "ZerothOrderOptimizer",
    "__version__",
]
