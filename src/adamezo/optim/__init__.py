"""The zeroth-order optimizer family: AdaMeZO and the baselines it is measured against."""

from adamezo.optim.adamezo import AdaMeZO
from adamezo.optim.base import NonFiniteLossError, ZerothOrderOptimizer
from adamezo.optim.fzoo import FZOO
from adamezo.optim.hizoo import HiZOO
from adamezo.optim.lozo import LOZO
from adamezo.optim.meazo import MEAZO
from adamezo.optim.mezo import MeZO
from adamezo.optim.mezo_switch import MeZOSwitch
from adamezo.optim.registry import OPTIMIZERS, TUNING_MODES, OptimizerEntry, optimizer_entry
from adamezo.optim.zo_adam import ZOAdam
from adamezo.optim.zo_muon import ZOMuon

__all__ = [
    "FZOO",
    "LOZO",
    "MEAZO",
    "OPTIMIZERS",
    "TUNING_MODES",
    "AdaMeZO",
    "HiZOO",
    "MeZO",
    "MeZOSwitch",
    "NonFiniteLossError",
    "OptimizerEntry",
    "ZOAdam",
    "ZOMuon",
    "ZerothOrderOptimizer",
    "optimizer_entry",
]
