"""Plain WSGI apps served by the stdlib's ``wsgiref`` (and Django's runserver, built on it).

Hooks ``WSGIServer.set_app`` so any WSGI callable, framework or not, gets a server span and RED
metrics. Apps marked ``_spyglass_skip`` (our own /metrics server) are left alone.
"""

from __future__ import annotations

from typing import Any

import wrapt

from spyglass.config import Config
from spyglass.server import WSGIMiddleware

NAME = "wsgi"
MODULES = ("wsgiref.simple_server",)


def wrap_app(app: Any) -> Any:
    if app is None or getattr(app, "_spyglass_skip", False) or isinstance(app, WSGIMiddleware):
        return app
    return WSGIMiddleware(app)


def setup_once(config: Config) -> None:
    def set_app(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if args:
            args = (wrap_app(args[0]), *args[1:])
        elif "application" in kwargs:
            kwargs["application"] = wrap_app(kwargs["application"])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper("wsgiref.simple_server", "WSGIServer.set_app", set_app)
