"""Run an OpenTelemetry contrib instrumentor with our tracer provider, once.

The provider is :func:`spyglass.tracing.instrumentation_provider`: the contrib code runs as
written, and its spans are light spans (see :mod:`spyglass.spans` for why)."""

from __future__ import annotations

import importlib
from typing import Any

from spyglass.integrations import DidNotEnable


def instrument(module: str, cls: str, **kwargs: Any) -> Any:
    try:
        instrumentor = getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        raise DidNotEnable(str(exc)) from None
    if not instrumentor.is_instrumented_by_opentelemetry:
        from spyglass.tracing import instrumentation_provider

        instrumentor.instrument(tracer_provider=instrumentation_provider(),
                                skip_dep_check=True, **kwargs)
    return instrumentor
