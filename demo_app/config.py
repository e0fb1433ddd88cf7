"""Where every demo service lives and which backing servers it uses, read from the environment.

All services and the launcher read the same variables, so one environment (a shell, a compose
file or a test) describes the whole shop. Defaults are the ports of the telemetry contract and
the embedded backends (SQLite, in-process cache, a SQLite-backed broker) that need no server.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENT = "demo"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    """One demo service: its name, application port (None for the worker) and metrics port."""

    name: str
    port: int | None
    metrics_port: int


_DEFAULTS = (
    ServiceSpec("storefront", 8000, 9464),
    ServiceSpec("orders", 8001, 9465),
    ServiceSpec("payments", 8002, 9466),
    ServiceSpec("worker", None, 9467),
)
SERVICE_NAMES = tuple(spec.name for spec in _DEFAULTS)


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else default


def service(name: str) -> ServiceSpec:
    """The spec of service ``name``; ports can be moved with DEMO_<NAME>_PORT/_METRICS_PORT."""
    for spec in _DEFAULTS:
        if spec.name == name:
            prefix = f"DEMO_{name.upper()}"
            return ServiceSpec(
                name,
                _env_int(f"{prefix}_PORT", spec.port),
                _env_int(f"{prefix}_METRICS_PORT", spec.metrics_port) or spec.metrics_port,
            )
    raise KeyError(f"unknown service {name!r}; choose from {', '.join(SERVICE_NAMES)}")


def service_url(name: str) -> str:
    """Base URL of an HTTP service, e.g. ``http://127.0.0.1:8001``."""
    override = os.environ.get(f"{name.upper()}_URL")
    if override:
        return override.rstrip("/")
    return f"http://{HOST}:{service(name).port}"


def state_dir() -> Path:
    """Directory shared by the services of one run: fault switches, SQLite file, broker, logs.

    DEMO_STATE_DIR moves it; the default is fixed per user so that ``python -m demo_app fault``
    typed in another terminal finds the running demo.
    """
    path = Path(os.environ.get("DEMO_STATE_DIR") or Path(tempfile.gettempdir()) / "spyglass-demo")
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str | None:
    """PostgreSQL URL of the orders database, or None for the embedded SQLite file."""
    return os.environ.get("DATABASE_URL") or None


def redis_url() -> str | None:
    """Redis URL for the catalogue cache and carts, or None for the in-process cache."""
    return os.environ.get("REDIS_URL") or None


def broker_url() -> str | None:
    """Celery broker URL (RabbitMQ), or None for the embedded SQLite broker."""
    return os.environ.get("CELERY_BROKER_URL") or None


def namespace() -> str:
    """Prefix of queue names and cache keys, so that several demos can share one server."""
    return os.environ.get("DEMO_NAMESPACE", "demo")
