"""uvicorn (standalone, ``--workers N``, and its gunicorn worker): wrap the loaded ASGI app.

``Config.load`` runs in each server process, after uvicorn wrapped the app in its own proxy
and logging middlewares; we wrap outermost so the measured duration covers them too.
"""

from __future__ import annotations

from typing import Any

import wrapt

from spyglass.config import Config
from spyglass.server import ASGIMiddleware

NAME = "uvicorn"
MODULES = ("uvicorn.config",)


def setup_once(config: Config) -> None:
    if not config.integration_enabled("asgi"):
        return

    def load(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            app = getattr(instance, "loaded_app", None)
            if app is not None and not isinstance(app, ASGIMiddleware):
                instance.loaded_app = ASGIMiddleware(app)
        except Exception:  # noqa: BLE001
            pass
        return result

    wrapt.wrap_function_wrapper("uvicorn.config", "Config.load", load)
