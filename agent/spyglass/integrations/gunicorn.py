"""gunicorn: any WSGI app gets the middleware; each worker reports its capacity.

``Worker.load_wsgi`` runs in the worker after fork, so the wrap happens per worker and the
capacity gauge (1 for sync workers, ``--threads`` for gthread) is that worker's. Workers that
run ASGI apps (uvicorn's worker classes) are left to the uvicorn integration.
"""

from __future__ import annotations

from typing import Any

import wrapt

from spyglass import metrics as _metrics
from spyglass.config import Config
from spyglass.integrations.wsgi import wrap_app

NAME = "gunicorn"
MODULES = ("gunicorn.workers.base",)


def _is_asgi_worker(worker: Any) -> bool:
    return any(c.__module__.startswith(("uvicorn", "uvicorn_worker"))
               for c in type(worker).__mro__)


def setup_once(config: Config) -> None:
    def load_wsgi(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            if not _is_asgi_worker(instance):
                instance.wsgi = wrap_app(instance.wsgi)
                inst = _metrics.get()
                if inst is not None:
                    threads = int(getattr(instance.cfg, "threads", 1) or 1)
                    sync = type(instance).__name__ == "SyncWorker"
                    inst.server_capacity.labels().set(1 if sync else threads)
        except Exception:  # noqa: BLE001
            pass
        return result

    wrapt.wrap_function_wrapper("gunicorn.workers.base", "Worker.load_wsgi", load_wsgi)
