"""Fixtures for the agent tests: a private Redis database per test for Celery's broker."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


def _redis_up(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_broker_url() -> Iterator[str]:
    """``redis://127.0.0.1:6379/<n>`` on a database emptied before and after the test.

    The database number is picked from the high end (15 down) so it does not meet the
    demo's default database 0. Redis runs on loopback on the CI machines (see the
    developers' guide); its absence is a setup failure, not a skip.
    """
    import redis

    if not _redis_up():
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (the CI machine runs one)")
    db = 13
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        client.flushdb()
        client.close()
