"""The zeroth-order optimizer family: AdaMeZO and the baselines it is measured against."""

from adamezo.optim.adamezo import AdaMeZO
from adamezo.optim.base import NonFiniteLossError, ZerothOrderOptimizer
from adamezo.optim.hizoo import HiZOO
from adamezo.optim.meazo import MEAZO
from adamezo.optim.mezo import MeZO
from adamezo.optim.mezo_switch import MeZOSwitch
from adamezo.optim.zo_adam import ZOAdam

__all__ = [
    "MEAZO",
    "AdaMeZO",
    "HiZOO",
    "MeZO",
    "MeZOSwitch",
    "NonFiniteLossError",
    "ZOAdam",
    "ZerothOrderOptimizer",
]
