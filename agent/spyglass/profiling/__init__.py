"""Profiles and stacks with py-spy: on-demand commands and the slow-request watchdog.

- ``spyglass profile`` / ``spyglass dump`` (:mod:`spyglass.profiling.cli`) record or dump a
  running app from outside, by pid, service name or listening port;
- :func:`install` (called by the agent in every app process) creates the
  :class:`~spyglass.profiling.watchdog.Watchdog` and hands it to the server layer, which tells it
  when each request starts and finishes.

Settings come from the agent's Config when it has them, else from the environment variables of
the same names: ``SPYGLASS_SLOW_REQUEST_SECONDS`` (default 5, 0 = off),
``SPYGLASS_STUCK_WORKER_SECONDS`` (default 20, 0 = off), ``SPYGLASS_SLOW_REQUEST_INTERVAL``
(seconds between two captures in one process, default 10) and ``SPYGLASS_PYSPY`` (the py-spy
binary). The stuck-worker default sits below gunicorn's 30 s worker timeout, so a hung sync
worker is dumped before the arbiter kills it.
"""

from __future__ import annotations

import os

from spyglass._log import get_logger
from spyglass.profiling.watchdog import Watchdog

__all__ = ["ENV_SLOW_INTERVAL", "ENV_SLOW_SECONDS", "ENV_STUCK_SECONDS", "Watchdog", "install",
           "watchdog"]

ENV_SLOW_SECONDS = "SPYGLASS_SLOW_REQUEST_SECONDS"
ENV_STUCK_SECONDS = "SPYGLASS_STUCK_WORKER_SECONDS"
ENV_SLOW_INTERVAL = "SPYGLASS_SLOW_REQUEST_INTERVAL"

_watchdog: Watchdog | None = None


def _seconds(config: object | None, name: str, env: str, default: float) -> float:
    value = getattr(config, name, None) if config is not None else None
    if value is not None:
        return float(value)
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        parsed = float(raw)
    except ValueError:
        get_logger().warning("%s=%r is not a number of seconds; using %g", env, raw, default)
        return default
    return max(0.0, parsed)


def watchdog() -> Watchdog | None:
    """The process's watchdog, if :func:`install` created one."""
    return _watchdog


def install(config: object | None = None) -> Watchdog | None:
    """Create the watchdog and register it with the server layer. Idempotent.

    Returns None when both the slow-request and stuck-worker thresholds are 0 (off).
    """
    global _watchdog
    if _watchdog is not None:
        return _watchdog
    threshold = _seconds(config, "slow_request_seconds", ENV_SLOW_SECONDS, 5.0)
    stuck = _seconds(config, "stuck_worker_seconds", ENV_STUCK_SECONDS, 20.0)
    if threshold <= 0 and stuck <= 0:
        return None
    interval = _seconds(None, "", ENV_SLOW_INTERVAL, 10.0)
    _watchdog = Watchdog(threshold=threshold, stuck_seconds=stuck, min_interval=interval)
    from spyglass import server

    register = getattr(server, "set_request_watch", None)
    if register is not None:
        register(_watchdog)
    else:
        get_logger().debug("server.set_request_watch is missing; slow requests are not watched")
    return _watchdog
