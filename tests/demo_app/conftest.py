"""Fixtures for the demo shop tests; the machinery lives in ``harness``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.demo_app.harness import (
    Demo,
    demo_env,
    real_backends,
    real_servers_available,
    start_demo,
    stop_demo,
)


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str | None]:
    """A demo environment with no server configured."""
    return demo_env(tmp_path / "state")


@pytest.fixture(scope="session")
def real_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """A demo environment on the real PostgreSQL, Redis and RabbitMQ, cleaned up afterwards."""
    if not real_servers_available():
        pytest.skip("PostgreSQL, Redis or RabbitMQ is not listening on loopback")
    with real_backends(demo_env(tmp_path_factory.mktemp("demo-real"))) as env:
        yield env


@pytest.fixture(scope="session")
def real_shop(real_env: dict[str, str | None]) -> Iterator[Demo]:
    """The shop running on the real servers, without load (tests send their own requests)."""
    demo = start_demo(real_env, "--no-load")
    try:
        yield demo
    finally:
        code = stop_demo(demo)
        assert code == 0, demo.process.describe()
