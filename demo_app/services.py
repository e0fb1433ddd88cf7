"""The command line and environment of each demo service, under the agent or bare.

Every service is started the way its framework's docs recommend for production (uvicorn,
gunicorn, the celery worker) and wrapped in ``python -m spyglass run`` with its own service
name and metrics port. DEMO_NO_AGENT=1 starts them bare: a debugging switch to tell a
problem of the demo from a problem of the agent.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from demo_app import config
from demo_app.worker.app import queue_name

REPO_ROOT = Path(__file__).resolve().parent.parent


def agent_enabled() -> bool:
    """False when DEMO_NO_AGENT=1 asks for bare services."""
    return os.environ.get("DEMO_NO_AGENT", "") not in ("1", "true", "yes")


@dataclass(frozen=True)
class ServiceCommand:
    """What to run for one service."""

    name: str
    argv: list[str]
    env: dict[str, str]


def _app_argv(name: str) -> list[str]:
    py, host = sys.executable, config.HOST
    port = str(config.service(name).port)
    if name == "storefront":
        return [py, "-m", "uvicorn", "demo_app.storefront.app:app", "--host", host, "--port", port]
    gunicorn = [py, "-m", "gunicorn", "--bind", f"{host}:{port}", "--graceful-timeout", "5"]
    if name == "orders":  # threads: requests wait on the database and the broker
        return [*gunicorn, "--workers", "2", "--threads", "4", "demo_app.orders.wsgi:application"]
    if name == "payments":  # sync workers: the classic one-request-per-process model
        return [*gunicorn, "--workers", "2", "--timeout", "120", "demo_app.payments.app:app"]
    worker = [py, "-m", "celery", "-A", "demo_app.worker.app", "worker", "-B", "--pool=prefork"]
    worker += ["--concurrency=2", "--loglevel=INFO", f"--queues={queue_name()}"]
    # Node name per namespace: two demos on one RabbitMQ would otherwise both be celery@HOST,
    # and the second worker dies declaring the first one's exclusive pidbox queue.
    worker += [f"--hostname={config.namespace()}@%h"]
    worker += [f"--schedule={config.state_dir() / 'celerybeat-schedule'}"]
    if config.broker_url() is None:  # the SQLite broker has no fanout for cluster chatter
        worker += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return worker


def command(name: str) -> ServiceCommand:
    """The command for service ``name``, under ``spyglass run`` unless DEMO_NO_AGENT=1."""
    argv = _app_argv(name)
    if agent_enabled():
        spec = config.service(name)
        agent = [sys.executable, "-m", "spyglass", "run", "--service-name", name]
        agent += ["--environment", config.ENVIRONMENT, "--metrics-port", str(spec.metrics_port)]
        argv = [*agent, "--", *argv]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["DEMO_STATE_DIR"] = str(config.state_dir())
    env["DJANGO_SETTINGS_MODULE"] = "demo_app.orders.settings"
    env["PYTHONUNBUFFERED"] = "1"
    return ServiceCommand(name, argv, env)


def migrate_command() -> ServiceCommand:
    """``django migrate`` for the orders database, run once before the services start."""
    base = command("orders")
    argv = [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"]
    return ServiceCommand("migrate", argv, base.env)
