"""Shared fixtures. Ray is started for real, once per test session, only by tests that ask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray with 2 CPUs for the whole test session."""
    import ray

    # Token authentication stays on in real runs; only tests turn it off (see issue 6).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    """A real SQLite MLflow store in a temp dir."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
