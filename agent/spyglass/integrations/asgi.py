"""Plain ASGI apps: nothing to patch by itself; uvicorn's hook applies the ASGI middleware.

Kept as a named integration so ``SPYGLASS_DISABLED_INTEGRATIONS=asgi`` turns the server-level
ASGI wrapping off (frameworks' own hooks still apply).
"""

from __future__ import annotations

from spyglass.config import Config

NAME = "asgi"
MODULES: tuple[str, ...] = ()


def setup_once(config: Config) -> None:
    return None
