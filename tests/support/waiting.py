"""Polling with deadlines instead of sleeps, and loopback port helpers.

Tests wait for real processes and background exporters; a fixed ``sleep`` is either too
short on a busy 2-core CI box or wastes time everywhere, so every wait polls a condition
until a deadline and fails with the last thing it saw.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

__all__ = ["closed_port", "free_port", "wait_until"]


def wait_until(
    fn: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "",
) -> Any:
    """Call ``fn`` until it returns a truthy value and return that value.

    Exceptions raised by ``fn`` count as "not yet". When ``timeout`` seconds pass, raise
    ``AssertionError`` with ``message`` plus the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        try:
            last = fn()
            last_exc = None
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - the condition may fail until ready
            last_exc = exc
        if time.monotonic() >= deadline:
            if last_exc is not None:
                seen = f"last exception: {last_exc!r}"
            else:
                seen = f"last value: {last!r}"
            prefix = f"{message}: " if message else ""
            raise AssertionError(f"{prefix}condition not met within {timeout}s ({seen})")
        time.sleep(interval)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """Return a port on 127.0.0.1 where nothing listens, so connecting is refused at once.

    The port is bound without ``listen()``, and a connect attempt is made to confirm the
    refusal before returning it.
    """
    for _ in range(20):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(("127.0.0.1", port))
            except ConnectionRefusedError:
                return port
            except OSError:
                continue
    raise RuntimeError("could not find a closed port on 127.0.0.1")
