"""Socket checks shared by ``spyglass run`` and the metrics owner, kept free of heavy imports
(the CLI runs on the app's startup path)."""

from __future__ import annotations

import socket

__all__ = ["bind_check"]


def bind_check(host: str, port: int) -> str | None:
    """None if ``host:port`` can be bound now, else the reason (used by ``spyglass run``)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
