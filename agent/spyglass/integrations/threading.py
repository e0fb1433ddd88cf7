"""Context into thread pools: ``ThreadPoolExecutor.submit`` runs the callable in a copy of the
submitter's context, so spans created in the pool are children of the request's span
(opentelemetry-python-contrib#1009). asyncio tasks copy the context by themselves.
"""

from __future__ import annotations

import contextvars
from typing import Any

import wrapt

from spyglass.config import Config

NAME = "threading"
MODULES = ("concurrent.futures.thread",)


def setup_once(config: Config) -> None:
    def submit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not args:
            return wrapped(*args, **kwargs)
        ctx = contextvars.copy_context()
        return wrapped(ctx.run, *args, **kwargs)

    wrapt.wrap_function_wrapper("concurrent.futures.thread", "ThreadPoolExecutor.submit", submit)
