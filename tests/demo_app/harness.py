"""Helpers for the demo shop tests: isolated environments and a running shop.

The services run bare (DEMO_NO_AGENT=1) until ``spyglass run`` can wrap them; the tracing
tests of the demo add the agent. Every run gets its own ports, state directory and
namespace; against the real servers it also gets its own PostgreSQL schema, RabbitMQ queue
and Redis key prefix, all removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.procs import AppProcess, descendants
from tests.support.waiting import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("DEMO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DEMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("DEMO_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BACKEND_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEMO_DB_SCHEMA")


def demo_env(state_dir: Path, **extra: str | None) -> dict[str, str | None]:
    """Environment of one isolated, bare demo: free ports, own state dir and namespace."""
    env: dict[str, str | None] = {name: None for name in BACKEND_VARS}
    env.update(
        DEMO_NO_AGENT="1",
        DEMO_STATE_DIR=str(state_dir),
        DEMO_NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        DEMO_ORDERS_TIMEOUT="1.5",
    )
    for name in ("STOREFRONT", "ORDERS", "PAYMENTS"):
        env[f"DEMO_{name}_PORT"] = str(free_port())
        env[f"{name}_URL"] = None
    for name in ("STOREFRONT", "ORDERS", "PAYMENTS", "WORKER"):
        env[f"DEMO_{name}_METRICS_PORT"] = str(free_port())
    env.update(extra)
    return env


def _reachable(url: str, default_port: int) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or default_port), timeout=1).close()
    except OSError:
        return False
    return True


def real_servers_available() -> bool:
    """PostgreSQL, Redis and RabbitMQ all listen where the tests expect them."""
    return all(
        _reachable(url, port) for url, port in ((PG_URL, 5432), (REDIS_URL, 6379), (AMQP_URL, 5672))
    )


@dataclass
class Demo:
    """A running ``python -m demo_app`` and how to reach its services."""

    process: AppProcess
    env: dict[str, str | None]
    state_dir: Path
    pids: list[int] = field(default_factory=list)

    def url(self, service: str) -> str:
        """Base URL of an HTTP service."""
        return f"http://127.0.0.1:{self.env[f'DEMO_{service.upper()}_PORT']}"

    def log(self, service: str) -> str:
        """Everything a service has written so far."""
        return (self.state_dir / "logs" / f"{service}.log").read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m demo_app ARGS`` with this demo's environment."""
        env = {k: v for k, v in {**os.environ, **self.env}.items() if v is not None}
        return subprocess.run(
            [sys.executable, "-m", "demo_app", *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def fault(self, service: str, name: str, state: str, *options: str) -> None:
        """Switch a fault through the CLI and check that it worked."""
        done = self.cli("fault", service, name, state, *options)
        assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def real_backends(env: dict[str, str | None]) -> Iterator[dict[str, str | None]]:
    """``env`` on the real servers, with its own schema, key prefix and queue, removed after."""
    import psycopg
    import redis
    from kombu import Connection

    schema = f"demo_{env['DEMO_NAMESPACE']}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield {
            **env,
            "DATABASE_URL": PG_URL,
            "DEMO_DB_SCHEMA": schema,
            "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": AMQP_URL,
        }
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


def start_demo(env: dict[str, str | None], *args: str) -> Demo:
    """Start the launcher and wait until it says every service is ready."""
    process = AppProcess([sys.executable, "-m", "demo_app", *args], env=env, cwd=REPO_ROOT)
    process.start()
    demo = Demo(process, env, Path(str(env["DEMO_STATE_DIR"])))
    try:
        wait_until(
            lambda: "\nready" in process.stdout() or process.returncode is not None,
            timeout=90,
            interval=0.1,
        )
        assert "\nready" in process.stdout(), process.describe()
    except BaseException:
        stop_demo(demo)
        raise
    demo.pids = descendants(process.pid)
    return demo


def stop_demo(demo: Demo, sig: int = signal.SIGTERM) -> int:
    """Stop the launcher by signal; whatever it left behind is killed and reported."""
    known = set(demo.pids) | set(descendants(demo.process.pid))
    try:
        return demo.process.stop(sig, timeout=30)
    finally:
        for pid in known:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        demo.process.close()
