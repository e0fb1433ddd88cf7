"""Fixtures for the demo shop tests; the machinery lives in ``harness``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.demo_app.harness import (
    AMQP_URL,
    PG_URL,
    REDIS_URL,
    Demo,
    demo_env,
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
    import psycopg
    import redis
    from kombu import Connection

    env = demo_env(tmp_path_factory.mktemp("demo-real"))
    schema = f"demo_{env['DEMO_NAMESPACE']}"
    env.update(
        DATABASE_URL=PG_URL,
        DEMO_DB_SCHEMA=schema,
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=AMQP_URL,
    )
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield env
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{env['DEMO_NAMESPACE']}:*"))
        if keys:
            client.delete(*keys)
        client.close()
        with Connection(AMQP_URL) as conn, contextlib.suppress(Exception):
            conn.default_channel.queue_delete(f"{env['DEMO_NAMESPACE']}.tasks")


@pytest.fixture(scope="session")
def real_shop(real_env: dict[str, str | None]) -> Iterator[Demo]:
    """The shop running on the real servers, without load (tests send their own requests)."""
    demo = start_demo(real_env, "--no-load")
    try:
        yield demo
    finally:
        code = stop_demo(demo)
        assert code == 0, demo.process.describe()
