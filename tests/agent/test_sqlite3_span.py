"""A sqlite3 statement's span, encoded without a span object, is the light span's bytes.

``integrations/_sqlite3_span`` decides a successful statement's ids as ``LightTracer`` would
and encodes the span from its parts. Here each span it queued is decoded, rebuilt as the
``LightSpan`` with the same ids and times, and encoded again: the bytes must be equal. The
statement runs as a root, under a light server span, under a remote parent, under an
unsampled parent (nothing queued) and under a parent with a trace state or a failing
statement (both: a light span, as before).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from spyglass import tracing
from spyglass.export.batch import BatchWorker
from spyglass.export.otlp import Encoded, encode_request, encode_span
from spyglass.integrations import _sqlite3_span
from spyglass.integrations.sqlite3 import _connection_class
from spyglass.spans import LightSpan, LightTracerProvider, attach_span, detach

SELECT = "SELECT id FROM t WHERE id = ?"


class Env:
    def __init__(self) -> None:
        self.queued: list[Encoded] = []
        self.ended: list[LightSpan] = []
        provider = TracerProvider(sampler=tracing.make_sampler("parentbased_always_on", 1.0))
        self.light = LightTracerProvider(provider, self._ended)
        self.server = self.light.get_tracer(tracing.SERVER_SCOPE, "1")
        self.tracer = self.light.get_tracer("spyglass.sqlite3")
        self.conn = sqlite3.connect(":memory:", factory=_connection_class(sqlite3.Connection))
        self.conn._spyglass_namespace = "main.db"  # what the patched connect() sets
        self.conn.execute("CREATE TABLE t (id INTEGER)")

    def _ended(self, span: LightSpan) -> None:
        self.ended.append(span)

    def flush(self) -> list[tuple[Any, bytes]]:
        """Every span queued since the last call: (decoded, its encoded bytes)."""
        out = []
        for index, body in self.queued:
            request = ExportTraceServiceRequest.FromString(encode_request([(index, body)]))
            scope_spans = request.resource_spans[0].scope_spans[0]
            assert scope_spans.scope.name == "spyglass.sqlite3"
            out.append((scope_spans.spans[0], body))
        self.queued.clear()
        return out


@pytest.fixture
def env() -> Iterator[Env]:
    before_tracer, before_worker = _sqlite3_span._tracers.tracer, tracing.EXPORT.worker
    state = Env()

    def send(batch: Sequence[Encoded]) -> bool:
        state.queued.extend(batch)
        return True

    worker: BatchWorker[Encoded] = BatchWorker("traces", send, max_queue=100, max_batch=100,
                                               interval=60.0)
    tracing.EXPORT.worker = worker
    _sqlite3_span.set_tracer(state.tracer)
    try:
        yield state
    finally:
        worker.flush(2.0)
        _sqlite3_span.set_tracer(before_tracer)
        tracing.EXPORT.worker = before_worker
        state.conn.close()


def _flushed(env: Env) -> list[tuple[Any, bytes]]:
    assert tracing.EXPORT.worker is not None and tracing.EXPORT.worker.flush(2.0)
    return env.flush()


def _as_light_span(env: Env, decoded: Any) -> bytes:
    """The same span made and ended as a LightSpan with the decoded ids and times."""
    parent = None
    if decoded.parent_span_id:
        parent = SpanContext(int.from_bytes(decoded.trace_id, "big"),
                             int.from_bytes(decoded.parent_span_id, "big"),
                             is_remote=bool(decoded.flags & 0x200))
    attrs = {"db.system.name": "sqlite", "db.namespace": "main.db",
             "db.query.text": SELECT, "db.operation.name": "SELECT"}
    ctx = SpanContext(int.from_bytes(decoded.trace_id, "big"),
                      int.from_bytes(decoded.span_id, "big"), False, TraceFlags(1))
    span = LightSpan("SELECT", ctx, parent, SpanKind.CLIENT, attrs, env.tracer._resource,
                     env.tracer.scope, lambda _: None,
                     start_time=decoded.start_time_unix_nano)
    span.end(decoded.end_time_unix_nano)
    return encode_span(span)[1]


def _select(env: Env) -> None:
    assert env.conn.cursor().execute(SELECT, (1,)).fetchall() == []


def test_root_statement_is_the_light_span_bytes(env: Env) -> None:
    _select(env)
    [(decoded, body)] = _flushed(env)
    assert decoded.name == "SELECT" and decoded.kind == 3 and not decoded.parent_span_id
    assert decoded.end_time_unix_nano >= decoded.start_time_unix_nano > 0
    assert body == _as_light_span(env, decoded)
    assert env.ended == []  # no span object was made


def test_statement_under_the_server_span_is_its_child(env: Env) -> None:
    server = env.server.start_span("GET", None, SpanKind.SERVER, {})
    token = attach_span(server)
    try:
        _select(env)
        _select(env)
    finally:
        detach(token)
    [(first, body), (second, _)] = _flushed(env)
    assert int.from_bytes(first.trace_id, "big") == server.context.trace_id
    assert int.from_bytes(first.parent_span_id, "big") == server.context.span_id
    assert first.flags == 0x100  # has is_remote, parent local
    assert first.span_id != second.span_id and first.trace_id == second.trace_id
    assert body == _as_light_span(env, first)


def _under(parent: SpanContext, env: Env) -> None:
    token = otel_context.attach(set_span_in_context(NonRecordingSpan(parent)))
    try:
        _select(env)
    finally:
        otel_context.detach(token)


def test_remote_parent_and_unsampled_parent(env: Env) -> None:
    _under(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1)), env)
    [(decoded, body)] = _flushed(env)
    assert decoded.flags == 0x300 and int.from_bytes(decoded.trace_id, "big") == 0xABC
    assert body == _as_light_span(env, decoded)
    # parentbased: an unsampled parent's child is not exported.
    _under(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0)), env)
    assert _flushed(env) == [] and env.ended == []


def test_trace_state_and_failures_take_the_light_span(env: Env) -> None:
    _under(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                       trace_state=TraceState([("vendor", "v1")])), env)
    [span] = env.ended
    assert span.context.trace_state.get("vendor") == "v1" and span.name == "SELECT"
    with pytest.raises(sqlite3.OperationalError):
        env.conn.cursor().execute("SELECT * FROM missing WHERE secret = 'hunter2'")
    failed = env.ended[1]
    assert failed.events[0].name == "exception"
    assert failed.attributes["error.type"] == "OperationalError"
    assert "hunter2" not in failed.attributes["db.query.text"]
    assert _flushed(env) == []  # those went through the light spans' own end
