"""Django (WSGI and ASGI): span at the handler, route from the resolver match.

Patching the handler classes, rather than inserting a middleware into ``settings.MIDDLEWARE``
as opentelemetry-instrumentation-django does, means we never touch settings at import time:
a project whose ``DJANGO_SETTINGS_MODULE`` is only set inside its ``wsgi.py`` (the
``startproject`` default) works under gunicorn, and responses Django produces before any view
runs (a disallowed Host, a middleware short-circuit) are still measured and left unchanged.
"""

from __future__ import annotations

from typing import Any

import wrapt

from spyglass.config import Config
from spyglass.server import asgi_call, set_route, wsgi_call

NAME = "django"
MODULES = ("django.core.handlers.base",)


def setup_once(config: Config) -> None:
    def resolve_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        match = wrapped(*args, **kwargs)
        try:
            set_route(getattr(match, "route", None))
        except Exception:  # noqa: BLE001
            pass
        return match

    wrapt.wrap_function_wrapper("django.core.handlers.base", "BaseHandler.resolve_request",
                                resolve_request)

    def wsgi(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        return wsgi_call(lambda e, s: wrapped(e, s), *args, **kwargs)

    async def asgi(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        scope, receive, send = args[:3]
        return await asgi_call(lambda s, r, se: wrapped(s, r, se), scope, receive, send)

    wrapt.register_post_import_hook(
        lambda m: wrapt.wrap_function_wrapper(m, "WSGIHandler.__call__", wsgi),
        "django.core.handlers.wsgi")
    wrapt.register_post_import_hook(
        lambda m: wrapt.wrap_function_wrapper(m, "ASGIHandler.__call__", asgi),
        "django.core.handlers.asgi")
