"""Starlette and FastAPI: span at ``Starlette.__call__``, route from ``scope["route"]``.

Starlette's router stores the matched route in the scope (FastAPI always does), which fixes
the raw-path label explosion of opentelemetry-instrumentation-asgi
(opentelemetry-python-contrib#1316). Unlike it, we create no extra spans per ASGI send or
receive. Mounted sub-apps are covered by the reentrancy guard: one span per request.
"""

from __future__ import annotations

from typing import Any

from spyglass.config import Config
from spyglass.server import asgi_call

NAME = "starlette"
MODULES = ("starlette.applications",)


def setup_once(config: Config) -> None:
    from starlette.applications import Starlette

    original = Starlette.__call__

    async def __call__(self: Any, scope: dict, receive: Any, send: Any) -> None:  # type: ignore[type-arg]
        await asgi_call(lambda s, r, se: original(self, s, r, se), scope, receive, send)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    Starlette.__call__ = __call__  # type: ignore[method-assign]
