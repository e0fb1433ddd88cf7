"""Starlette and FastAPI: span at ``Starlette.__call__``, route from ``scope["route"]``.

Starlette's router stores the matched route in the scope (FastAPI always does), which fixes
the raw-path label explosion of opentelemetry-instrumentation-asgi
(opentelemetry-python-contrib#1316). Unlike it, we create no extra spans per ASGI send or
receive. Mounted sub-apps are covered by the reentrancy guard: one span per request.

FastAPI >= 0.13x has native OpenTelemetry telemetry that starts its own SERVER span as soon
as a real tracer provider is installed (ours is). That span extracts its parent from the
headers, not from the current context, so each request became two root SERVER spans in two
traces, and the app's own spans and logs landed in FastAPI's trace instead of ours. We turn
it off per request the way FastAPI's own ``exclude`` option does: a ``"fastapi.telemetry"``
key in the scope makes ``FastAPI.__call__`` go straight to the app.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import wrapt

from spyglass.config import Config
from spyglass.server import asgi_call, current

NAME = "starlette"
MODULES = ("starlette.applications",)

#: The scope key FastAPI's native telemetry checks (``fastapi/applications.py``); present
#: means "this request is already observed", and None is the value ``exclude`` uses.
_FASTAPI_SCOPE_KEY = "fastapi.telemetry"


def _as_coroutine_function(func: Any) -> Any:
    """``func``, marked as a coroutine function for the checks servers and frameworks make.

    The patched ``__call__`` methods are plain functions that return a coroutine (the app's
    own, or asgi_call's) instead of ``async def`` wrappers awaiting it: no coroutine object and
    no await level of ours per request once an outer layer observes it. uvicorn picks ASGI 3
    only if ``asyncio.iscoroutinefunction(app.__call__)`` holds, which a plain function passes
    with asyncio's marker (Python 3.11 and older) or ``inspect.markcoroutinefunction``
    (3.12 and newer)."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        return mark(func)
    func._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return func


def setup_once(config: Config) -> None:
    from starlette.applications import Starlette

    original = Starlette.__call__

    def __call__(self: Any, scope: dict, receive: Any, send: Any) -> Any:
        if current() is not None:  # an outer layer (the server hook, FastAPI) observes it
            return original(self, scope, receive, send)
        return asgi_call(lambda s, r, se: original(self, s, r, se), scope, receive, send)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    Starlette.__call__ = _as_coroutine_function(__call__)  # type: ignore[method-assign]


def _patch_fastapi(module: Any) -> None:
    fastapi_cls = getattr(module, "FastAPI", None)
    if fastapi_cls is None or "__call__" not in vars(fastapi_cls):
        return  # older FastAPI: no native telemetry, Starlette.__call__ covers it
    original = fastapi_cls.__call__

    def __call__(self: Any, scope: dict, receive: Any, send: Any) -> Any:
        if scope.get("type") == "http":
            scope.setdefault(_FASTAPI_SCOPE_KEY, None)
        if current() is not None:
            return original(self, scope, receive, send)
        return asgi_call(lambda s, r, se: original(self, s, r, se), scope, receive, send)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    fastapi_cls.__call__ = _as_coroutine_function(__call__)


# Registered when integrations.install() imports this module at agent start (only if the
# integration is enabled), before the app imports anything. Registering it from setup_once
# was too late: that runs when starlette.applications finishes importing, which happens
# while fastapi.applications is still half-imported (it imports Starlette before defining
# FastAPI), so wrapt called the hook at once and found no FastAPI class to patch.
wrapt.register_post_import_hook(_patch_fastapi, "fastapi.applications")
