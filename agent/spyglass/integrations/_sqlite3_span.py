"""The per-statement half of the sqlite3 integration: one CLIENT span around a cursor call.

It lives apart from :mod:`spyglass.integrations.sqlite3` because it is compiled with mypyc
(``setup.py``: it runs on every query) while the cursor and connection subclasses there are
created at run time, for whatever factory the app passes, and mypyc compiles no such class.
"""

from __future__ import annotations

import os
from typing import Any, Final

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from spyglass import forksafe
from spyglass import metrics as _metrics
from spyglass._log import get_logger
from spyglass.scrub import scrub_sql
from spyglass.spans import LightSpan, current_context

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


#: Per statement: its operation and its scrubbed text. Statements repeat on every request
#: (parameterised), and both are derived from the text alone.
_STATEMENTS: Final[dict[str, tuple[str, str]]] = {}
_STATEMENTS_MAX: Final = 256


def _statement(sql: str) -> tuple[str, str]:
    known = _STATEMENTS.get(sql)
    if known is None:
        known = (_operation(sql), scrub_sql(sql))
        if len(_STATEMENTS) >= _STATEMENTS_MAX:
            _STATEMENTS.clear()
        _STATEMENTS[sql] = known
    return known


#: ``db_client_operation_duration``'s series per operation, for the instruments they belong
#: to (a fork starts with new ones: forksafe below).
_SERIES: Final[dict[str, Any]] = {}
_SERIES_OF: Final[list[Any]] = [None]


def _forget_series() -> None:
    _SERIES.clear()
    _SERIES_OF[0] = None


forksafe.register_after_in_child(_forget_series)


def _record_duration(op: str, span: Any) -> None:
    """One ``db_client_operation_duration`` observation for an ended span: what
    ``tracing.record_dependency`` records for other CLIENT spans, without reading the labels
    back from the attributes (tracing skips this integration's spans)."""
    try:
        inst = _metrics._instruments
        # An SDK span (no light tracer: tracing.setup failed) is measured by the SDK's
        # DependencyMetricsProcessor instead.
        if inst is None or not op or span.__class__ is not LightSpan:
            return
        end = span.end_time
        if end is None:
            return
        if _SERIES_OF[0] is not inst:
            _SERIES.clear()
            _SERIES_OF[0] = inst
        series = _SERIES.get(op)
        if series is None:
            series = inst.db_client_duration.labels("sqlite", op)
            if len(_SERIES) < _STATEMENTS_MAX:
                _SERIES[op] = series
        series.observe((end - span.start_time) / 1e9)
    except Exception:  # noqa: BLE001
        get_logger().debug("sqlite3 duration metric failed", exc_info=True)


def traced(cursor: Any, method: Any, sql: Any, args: Any) -> Any:
    """Run ``method(cursor, sql, *args)`` (the cursor class's own method) inside a CLIENT
    span, unless instrumentation is suppressed."""
    tracer = _tracer
    if tracer is None or current_context().get(_SUPPRESS_INSTRUMENTATION_KEY):
        return method(cursor, sql, *args)
    attrs = {"db.system.name": "sqlite"}
    ns = getattr(cursor.connection, "_spyglass_namespace", "")
    if ns:
        attrs["db.namespace"] = ns
    op = ""
    if isinstance(sql, str):
        # Scrubbed here, not when the span ends (tracing.self_recording_tracer): nothing else
        # can set attributes on this span, which is never made current.
        op, attrs["db.query.text"] = _statement(sql)
    if op:
        attrs["db.operation.name"] = op
    span = tracer.start_span(op or "sqlite", None, SpanKind.CLIENT, attrs)
    try:
        return method(cursor, sql, *args)
    except Exception as exc:
        span.record_exception(exc)
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        span.end()
        _record_duration(op, span)
