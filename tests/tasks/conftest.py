"""Shared fixtures: the real data directory, and a hub that tests never reach."""

import os
from pathlib import Path

import pytest

from adamezo.tasks import sources

REPO = Path(__file__).resolve().parents[2]


def _shared_data_dir() -> Path | None:
    env = os.environ.get(sources.DATA_ENV)
    path = Path(env) if env else REPO / ".." / "shared" / "data"
    return path.resolve() if path.is_dir() else None


# Resolved at import, before the autouse fixture below clears ADAMEZO_DATA for each test.
SHARED_DATA = _shared_data_dir()


@pytest.fixture
def data_dir() -> Path:
    """The real benchmark data (``$ADAMEZO_DATA`` or ``../shared/data``), else skip."""
    if SHARED_DATA is None:
        pytest.skip("real benchmark data not found: set ADAMEZO_DATA or provide ../shared/data")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Tests never touch the network: the hub probe says unreachable and offline mode is off."""
    monkeypatch.setattr(sources, "hub_reachable", lambda *args, **kwargs: False)
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", sources.DATA_ENV):
        monkeypatch.delenv(var, raising=False)
