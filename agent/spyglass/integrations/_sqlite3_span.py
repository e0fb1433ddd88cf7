"""The per-statement half of the sqlite3 integration: one CLIENT span around a cursor call.

It lives apart from :mod:`spyglass.integrations.sqlite3` because it is compiled with mypyc
(``setup.py``: it runs on every query) while the cursor and connection subclasses there are
created at run time, for whatever factory the app passes, and mypyc compiles no such class.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from spyglass.scrub import scrub_sql
from spyglass.spans import current_context

__all__ = ["namespace", "set_tracer", "traced"]

_tracer: Any = None


def set_tracer(tracer: Any) -> None:
    global _tracer
    _tracer = tracer


def namespace(database: Any) -> str:
    try:
        return os.fsdecode(database)[:256]
    except Exception:  # noqa: BLE001
        return ""


def _operation(sql: Any) -> str:
    if isinstance(sql, str):
        head = sql.lstrip()[:32].split(None, 1)
        if head:
            return head[0].upper()
    return ""


def traced(cursor: Any, method: Any, sql: Any, args: Any) -> Any:
    """Run ``method(cursor, sql, *args)`` (the cursor class's own method) inside a CLIENT
    span, unless instrumentation is suppressed."""
    tracer = _tracer
    if tracer is None or current_context().get(_SUPPRESS_INSTRUMENTATION_KEY):
        return method(cursor, sql, *args)
    op = _operation(sql)
    attrs = {"db.system.name": "sqlite"}
    ns = getattr(cursor.connection, "_spyglass_namespace", "")
    if ns:
        attrs["db.namespace"] = ns
    if isinstance(sql, str):
        # Scrubbed here, not when the span ends (tracing.self_scrubbed_tracer): nothing else
        # can set attributes on this span, which is never made current.
        attrs["db.query.text"] = scrub_sql(sql)
    if op:
        attrs["db.operation.name"] = op
    span = tracer.start_span(op or "sqlite", kind=SpanKind.CLIENT, attributes=attrs)
    try:
        return method(cursor, sql, *args)
    except Exception as exc:
        span.record_exception(exc)
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        span.end()
