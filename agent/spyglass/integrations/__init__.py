"""Integrations: one module per library, patched when (and only when) the library is imported.

Each module defines ``NAME``, ``MODULES`` (the import names that trigger it) and
``setup_once(config)``. :func:`install` registers a post-import hook per integration, so
importing the agent costs nothing for libraries the app never imports, and a library imported
before the agent is patched at once. A failing integration is logged, marked 0 in
``spyglass_integration_status`` and left alone; the app carries on without it.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from types import ModuleType

from spyglass import metrics as _metrics
from spyglass._log import get_logger
from spyglass.config import Config

__all__ = ["ALL", "DidNotEnable", "install"]

#: Integration name -> module under spyglass.integrations (the names users disable).
ALL = (
    "wsgi", "asgi", "flask", "django", "starlette", "gunicorn", "uvicorn", "werkzeug",
    "requests", "httpx", "urllib3", "sqlalchemy", "psycopg", "psycopg2", "sqlite3", "redis",
    "celery", "threading",
)


class DidNotEnable(Exception):
    """The integration cannot run here (library missing or too old); not an error."""


_lock = threading.Lock()
_done: set[str] = set()


def _status(name: str, ok: bool) -> None:
    inst = _metrics.get()
    if inst is not None:
        try:
            inst.integration_status.labels(name).set(1.0 if ok else 0.0)
        except Exception:  # noqa: BLE001
            pass


def _enable(name: str, module: ModuleType, config: Config) -> None:
    with _lock:
        if name in _done:
            return
        _done.add(name)
    try:
        module.setup_once(config)
    except DidNotEnable as exc:
        get_logger().debug("integration %s not enabled: %s", name, exc)
    except Exception:  # noqa: BLE001
        get_logger().warning("integration %s failed and is off; the app runs without it",
                             name, exc_info=True)
        _status(name, False)
    else:
        _status(name, True)


def _hook_for(name: str, module: ModuleType, config: Config) -> Callable[[ModuleType], None]:
    def hook(_imported: ModuleType) -> None:
        _enable(name, module, config)

    return hook


def install(config: Config) -> None:
    import wrapt

    for name in ALL:
        if not config.integration_enabled(name):
            continue
        try:
            module = importlib.import_module(f"spyglass.integrations.{name}")
        except Exception:  # noqa: BLE001
            get_logger().warning("integration %s could not load", name, exc_info=True)
            continue
        triggers: tuple[str, ...] = getattr(module, "MODULES", ())
        if not triggers:
            _enable(name, module, config)
            continue
        for trigger in triggers:
            if trigger in sys.modules:
                _enable(name, module, config)
            else:
                wrapt.register_post_import_hook(_hook_for(name, module, config), trigger)
