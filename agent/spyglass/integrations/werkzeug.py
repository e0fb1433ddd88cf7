"""WSGI apps served by werkzeug's development server (``flask run``, ``app.run()``)."""

from __future__ import annotations

from typing import Any

import wrapt

from spyglass.config import Config
from spyglass.integrations.wsgi import wrap_app

NAME = "werkzeug"
MODULES = ("werkzeug.serving",)


def setup_once(config: Config) -> None:
    def make_server(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if len(args) >= 3:
            args = (*args[:2], wrap_app(args[2]), *args[3:])
        elif "app" in kwargs:
            kwargs["app"] = wrap_app(kwargs["app"])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper("werkzeug.serving", "make_server", make_server)
