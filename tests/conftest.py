"""Shared test configuration: hypothesis profiles, data path, a fresh plugin manager."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Tests never reach out to dataset download hosts: missing data must give the offline error.
os.environ.setdefault("PROJBENCH_DOWNLOAD", "0")

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def data_dir() -> Path:
    """Real torchvision-layout data from $PROJBENCH_DATA; skips the test when unset."""
    raw = os.environ.get("PROJBENCH_DATA")
    if not raw or not Path(raw).is_dir():
        pytest.skip("PROJBENCH_DATA is not set to a data folder (e.g. ../shared/data)")
    return Path(raw)


@pytest.fixture
def fresh_manager():
    """Rebuild the plugin manager before and after a test that changes plugins."""
    from projbench import manager

    manager.reset()
    yield manager
    manager.reset()
