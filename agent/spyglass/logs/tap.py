"""One tap on stdlib logging, shared by every consumer of log records (Loki, Sentry).

We wrap ``logging.Logger.callHandlers`` rather than adding a handler to the root logger: a
root handler would make ``logging.basicConfig()`` a silent no-op (opentelemetry-python#4427)
and would be removed by ``dictConfig``. The wrapper runs the app's handlers first, unchanged,
then hands the record to each consumer whose level it reaches. One wrapper, however many
consumers, so a record costs one extra Python call, not one per signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from spyglass._log import get_logger

__all__ = ["add_consumer"]

Consumer = Callable[[logging.LogRecord], None]

_consumers: list[tuple[int, Consumer]] = []
_lock = threading.Lock()
_installed = False


def add_consumer(level: int, consumer: Consumer) -> None:
    """Call ``consumer(record)`` for every record at ``level`` or above that the app emits."""
    global _installed
    with _lock:
        _consumers.append((level, consumer))
        if _installed:
            return
        _installed = True
    original = logging.Logger.callHandlers
    consumers = _consumers

    # Any: this module is compiled (setup.py), and a compiled function checks its argument
    # types; logging never hands over anything else, but a caller of callHandlers might.
    def callHandlers(self: Any, record: Any) -> None:
        original(self, record)
        levelno = record.levelno
        for level, consume in consumers:
            if levelno >= level:
                try:
                    consume(record)
                except Exception:  # noqa: BLE001
                    get_logger().debug("log consumer failed", exc_info=True)

    callHandlers.__wrapped__ = original  # type: ignore[attr-defined]
    logging.Logger.callHandlers = callHandlers  # type: ignore[method-assign]
