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
from spyglass.server import asgi_call, current, set_route, wsgi_call

NAME = "django"
# Triggered by the handler modules, not by ``base``: ``handlers.wsgi`` imports ``base`` halfway
# through its own import, and a hook registered then for the half-imported ``wsgi`` module ran at
# once and found no ``WSGIHandler`` yet. By the time either handler module has finished
# importing, ``base`` is complete.
MODULES = ("django.core.handlers.wsgi", "django.core.handlers.asgi")


def _resolve_request(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    match = wrapped(*args, **kwargs)
    try:
        set_route(getattr(match, "route", None))
    except Exception:  # noqa: BLE001
        pass
    return match


def _wsgi(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if current() is not None:  # the server's hook (gunicorn, werkzeug) observes it
        return wrapped(*args, **kwargs)
    return wsgi_call(lambda e, s: wrapped(e, s), *args, **kwargs)


async def _asgi(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if current() is not None:  # the server's hook (uvicorn) observes it
        return await wrapped(*args, **kwargs)
    scope, receive, send = args[:3]
    return await asgi_call(lambda s, r, se: wrapped(s, r, se), scope, receive, send)


def _patcher(attribute: str, wrapper: Any) -> Any:
    def patch(module: Any) -> None:
        if hasattr(module, attribute.split(".", 1)[0]):
            wrapt.wrap_function_wrapper(module, attribute, wrapper)

    return patch


def setup_once(config: Config) -> None:
    wrapt.wrap_function_wrapper("django.core.handlers.base", "BaseHandler.resolve_request",
                                _resolve_request)
    wrapt.register_post_import_hook(_patcher("WSGIHandler.__call__", _wsgi),
                                    "django.core.handlers.wsgi")
    wrapt.register_post_import_hook(_patcher("ASGIHandler.__call__", _asgi),
                                    "django.core.handlers.asgi")
