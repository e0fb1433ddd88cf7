"""The agent's own logger: rate-limited, never shipped, and never able to raise.

Everything the agent says about itself goes to the ``spyglass`` logger, which does not
propagate to the app's root logger (so the app's handlers and Loki never see agent chatter)
and writes to stderr (never stdout, which belongs to the app). Warnings about a failing backend
would otherwise repeat on every export, so :func:`warn_once_per` lets one message through per
key and interval *per app instance*: gunicorn's master and each of its workers all fail the
same export, and a user should read one warning, not one per process. The processes of one
instance share the metrics directory (``SPYGLASS_METRICS_DIR``), so the last warning time is
kept there as a marker file's mtime; without that directory the limit is per process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

__all__ = ["get_logger", "warn_once_per"]

_LOGGER_NAME = "spyglass"
_lock = threading.Lock()
_last: dict[str, float] = {}
_configured = False


def get_logger() -> logging.Logger:
    """The ``spyglass`` logger, set up on first use to write to stderr only."""
    global _configured
    logger = logging.getLogger(_LOGGER_NAME)
    if not _configured:
        _configured = True
        logger.propagate = False
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("spyglass: %(levelname)s: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    return logger


def set_debug(enabled: bool) -> None:
    get_logger().setLevel(logging.DEBUG if enabled else logging.WARNING)


def warn_once_per(key: str, message: str, *args: object, interval: float = 300.0) -> bool:
    """Log ``message`` as a warning unless ``key`` was logged less than ``interval`` s ago."""
    now = time.monotonic()
    with _lock:
        last = _last.get(key)
        if last is not None and now - last < interval:
            return False
        _last[key] = now
    if not _first_in_instance(key, interval):
        return False
    try:
        get_logger().warning(message, *args)
    except Exception:  # noqa: BLE001 - the agent's logging must never hurt the app
        pass
    return True


def _first_in_instance(key: str, interval: float) -> bool:
    """True unless another process of this app instance warned about ``key`` recently."""
    directory = os.environ.get("SPYGLASS_METRICS_DIR")
    if not directory:
        return True
    marker = os.path.join(directory, "warned-" + "".join(c if c.isalnum() else "-" for c in key))
    try:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            if time.time() - os.stat(marker).st_mtime < interval:
                return False
            os.utime(marker)  # this process takes the next warning of the interval
            return True
        os.close(fd)
    except OSError:
        pass  # no shared directory after all: fall back to the per-process limit
    return True


def reset_after_fork() -> None:
    """A forked worker gets its own warnings: the parent's silence says nothing about it."""
    with _lock:
        _last.clear()
