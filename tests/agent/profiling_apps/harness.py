"""Shared pieces of the errors/profiling tests: app directory, environment, wiring checks.

The agent's entry points (``agent.initialize``, ``server.begin``/``finish``, the CLI) call
:mod:`spyglass.errors` and :mod:`spyglass.profiling` through small hooks. Tests that need a hook
skip, naming it, while it is absent, and run as soon as it is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver

__all__ = ["APPS", "app_env", "gunicorn", "missing_cli", "missing_errors_wiring",
           "missing_profiling_wiring", "missing_server_exception_hook"]

APPS = Path(__file__).resolve().parent




def _initialize_names() -> set[str]:
    from spyglass import agent

    return set(agent.initialize.__code__.co_names)


def missing_errors_wiring() -> str | None:
    """Why Sentry cannot work under ``spyglass run`` yet, or None when it is wired."""
    if "errors" not in _initialize_names():
        return "agent.initialize() does not call spyglass.errors.install yet"
    return None


def missing_server_exception_hook() -> str | None:
    from spyglass import server

    if not hasattr(server, "add_exception_hook"):
        return "server.add_exception_hook is not wired yet"
    return missing_errors_wiring()


def missing_profiling_wiring() -> str | None:
    """Why the slow-request watchdog cannot work under ``spyglass run`` yet, or None."""
    from spyglass import server

    if not hasattr(server, "set_request_watch"):
        return "server.set_request_watch is not wired yet"
    if "profiling" not in _initialize_names():
        return "agent.initialize() does not call spyglass.profiling.install yet"
    return None


def missing_cli() -> str | None:
    """Why ``spyglass profile``/``dump`` are not available yet, or None."""
    import argparse

    from spyglass import cli

    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and {"profile", "dump"} <= set(
                action.choices):
            return None
    return "cli.build_parser() does not add spyglass.profiling.cli yet"


def app_env(otlp: OTLPReceiver, loki: LokiReceiver | None = None,
            **extra: str | None) -> dict[str, str | None]:
    """Environment for an app under test: exporters to the stand-ins, metrics off."""
    env: dict[str, str | None] = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "SPYGLASS_METRICS": "false",
        "SPYGLASS_LOGS": "true" if loki is not None else "false",
        "SPYGLASS_LOKI_URL": loki.endpoint if loki is not None else None,
        "SENTRY_DSN": None,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": None,
    }
    env.update(extra)
    return env


def gunicorn(*args: str) -> list[str]:
    """``python -m gunicorn ARGS`` with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "gunicorn", *args]
