"""Run an OpenTelemetry contrib instrumentor with our tracer provider, once."""

from __future__ import annotations

import importlib
from typing import Any

from opentelemetry import trace

from spyglass.integrations import DidNotEnable


def instrument(module: str, cls: str, **kwargs: Any) -> Any:
    try:
        instrumentor = getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        raise DidNotEnable(str(exc)) from None
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=trace.get_tracer_provider(),
                                skip_dep_check=True, **kwargs)
    return instrumentor
