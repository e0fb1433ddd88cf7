"""The per-statement half of the sqlite3 integration: one CLIENT span around a cursor call.

It lives apart from :mod:`spyglass.integrations.sqlite3` because it is compiled with mypyc
(``setup.py``: it runs on every query) while the cursor and connection subclasses there are
created at run time, for whatever factory the app passes, and mypyc compiles no such class.

Why a statement that succeeds makes no span object: its span is never made current, nothing
else can set an attribute on it, and its attributes follow from the statement and the
database alone. So the ids are decided as the tracer would (``LightTracer.child_ids``), the
span is encoded from its parts with the attribute fields cached per statement, and the
duration observed: no ``LightSpan``, no attribute dict, no end-of-span processing. The
output is the same bytes a light span would encode to (``tests/agent/test_sqlite3_span.py``).
It was the largest share of what Spyglass added to a FastAPI request with one query
(benchmarks/RESULTS.md, session 15). A statement that raises, or a sampler that needs its
call, or a parent with a trace state, takes the light span as before.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _API_SUPPRESS_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from spyglass import forksafe, tracing
from spyglass import metrics as _metrics
from spyglass._log import get_logger
from spyglass.export.otlp import attribute_fields, encode_client_span, scope_index
from spyglass.scrub import scrub_sql
from spyglass.spans import LightSpan, LightTracer, current_context

__all__ = ["namespace", "set_tracer", "traced"]

# Final names are C statics in this compiled module; module-level names, a dict lookup each
# (a module bound to a name is one either way).
_SUPPRESS_INSTRUMENTATION_KEY: Final = _API_SUPPRESS_KEY
_time_ns: Final = time.time_ns


class _Tracers:
    """The tracer ``set_tracer`` was given, read on every statement (an attribute of a
    compiled class is read natively; a module-level name would be a dict lookup)."""

    def __init__(self) -> None:
        self.tracer: Any = None
        #: The tracer, where it is a light one: statements then skip the span object.
        self.light: LightTracer | None = None


_tracers: Final = _Tracers()
#: ``scope_index`` of the tracer's scope (-1: not looked up yet).
_scope: Final = [-1]


def set_tracer(tracer: Any) -> None:
    _tracers.tracer = tracer
    _tracers.light = tracer if isinstance(tracer, LightTracer) else None
    _scope[0] = -1
    _ENCODED.clear()


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
#: Per database, then statement: the operation and the span's encoded attribute fields.
_ENCODED: Final[dict[str, dict[str, tuple[str, bytes]]]] = {}


def _statement(sql: str) -> tuple[str, str]:
    known = _STATEMENTS.get(sql)
    if known is None:
        known = (_operation(sql), scrub_sql(sql))
        if len(_STATEMENTS) >= _STATEMENTS_MAX:
            _STATEMENTS.clear()
        _STATEMENTS[sql] = known
    return known


def _attributes(sql: Any, ns: str) -> tuple[str, dict[str, Any]]:
    """The operation ("" if none) and the span's attributes."""
    attrs: dict[str, Any] = {"db.system.name": "sqlite"}
    if ns:
        attrs["db.namespace"] = ns
    op = ""
    if isinstance(sql, str):
        # Scrubbed here, not when the span ends (tracing.self_recording_tracer): nothing else
        # can set attributes on this span, which is never made current.
        op, attrs["db.query.text"] = _statement(sql)
    if op:
        attrs["db.operation.name"] = op
    return op, attrs


def _encoded(sql: str, ns: str) -> tuple[str, bytes]:
    by_sql = _ENCODED.get(ns)
    known = by_sql.get(sql) if by_sql is not None else None
    if known is None:
        op, attrs = _attributes(sql, ns)
        known = (op, attribute_fields(attrs))
        if by_sql is None or len(by_sql) >= _STATEMENTS_MAX:
            if len(_ENCODED) >= 64:
                _ENCODED.clear()
            by_sql = _ENCODED[ns] = {}
        by_sql[sql] = known
    return known


#: ``db_client_operation_duration``'s series per operation, for the instruments they belong
#: to (a fork starts with new ones: forksafe below).
_SERIES: Final[dict[str, Any]] = {}
_SERIES_OF: Final[list[Any]] = [None]


def _forget_series() -> None:
    _SERIES.clear()
    _SERIES_OF[0] = None


forksafe.register_after_in_child(_forget_series)


def _record_duration(op: str, seconds: float) -> None:
    """One ``db_client_operation_duration`` observation: what ``tracing.record_dependency``
    records for other CLIENT spans, without reading the labels back from the attributes
    (tracing skips this integration's spans)."""
    inst = _metrics._instruments
    if inst is None or not op:
        return
    if _SERIES_OF[0] is not inst:
        _SERIES.clear()
        _SERIES_OF[0] = inst
    series = _SERIES.get(op)
    if series is None:
        series = inst.db_client_duration.labels("sqlite", op)
        if len(_SERIES) < _STATEMENTS_MAX:
            _SERIES[op] = series
    series.observe(seconds)


def _finished(ids: tuple[int, int, int, bool, bool], sql: str, ns: str, start: int) -> None:
    """The statement's span (encoded and queued if sampled) and its duration."""
    try:
        end = _time_ns()
        op, fields = _encoded(sql, ns)
        if ids[4]:
            tracer = _tracers.light
            scope = _scope[0]
            if scope < 0 and tracer is not None:
                scope = _scope[0] = scope_index(tracer.resource, tracer.scope)
            tracing.export_encoded(encode_client_span(
                scope, op or "sqlite", ids[0], ids[1], ids[2], ids[3], start, end, fields))
        _record_duration(op, (end - start) / 1e9)
    except Exception:  # noqa: BLE001
        get_logger().debug("sqlite3 span failed", exc_info=True)


def traced(cursor: Any, method: Any, sql: Any, args: Any) -> Any:
    """Run ``method(cursor, sql, *args)`` (the cursor class's own method) inside a CLIENT
    span, unless instrumentation is suppressed."""
    tracer = _tracers.tracer
    if tracer is None:
        return method(cursor, sql, *args)
    context = current_context()
    if context.get(_SUPPRESS_INSTRUMENTATION_KEY):
        return method(cursor, sql, *args)
    light = _tracers.light
    ids = light.child_ids(context) if light is not None and type(sql) is str else None
    if ids is None:
        return _with_span(tracer, cursor, method, sql, args)
    ns = getattr(cursor.connection, "_spyglass_namespace", "")
    start = _time_ns()
    try:
        result = method(cursor, sql, *args)
    except Exception as exc:
        # A failed statement's span carries the exception: made as a light span, from the
        # same start.
        _failed(tracer, sql, ns, start, exc)
        raise
    except BaseException:
        _finished(ids, sql, ns, start)
        raise
    _finished(ids, sql, ns, start)
    return result


def _with_span(tracer: Any, cursor: Any, method: Any, sql: Any, args: Any) -> Any:
    """The statement inside a span object (the general path)."""
    op, attrs = _attributes(sql, getattr(cursor.connection, "_spyglass_namespace", ""))
    span = tracer.start_span(op or "sqlite", None, SpanKind.CLIENT, attrs)
    try:
        return method(cursor, sql, *args)
    except Exception as exc:
        _record_failure(span, exc)
        raise
    finally:
        span.end()
        _span_duration(op, span)


def _failed(tracer: Any, sql: str, ns: str, start: int, exc: Exception) -> None:
    try:
        op, attrs = _attributes(sql, ns)
        span = tracer.start_span(op or "sqlite", None, SpanKind.CLIENT, attrs,
                                 start_time=start)
        _record_failure(span, exc)
        span.end()
        _span_duration(op, span)
    except Exception:  # noqa: BLE001
        get_logger().debug("sqlite3 span failed", exc_info=True)


def _record_failure(span: Any, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _span_duration(op: str, span: Any) -> None:
    try:
        # An SDK span (no light tracer: tracing.setup failed) is measured by the SDK's
        # DependencyMetricsProcessor instead.
        if type(span) is LightSpan and span.end_time is not None:
            _record_duration(op, (span.end_time - span.start_time) / 1e9)
    except Exception:  # noqa: BLE001
        get_logger().debug("sqlite3 duration metric failed", exc_info=True)
