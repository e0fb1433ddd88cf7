"""A loopback stand-in for an OTLP/HTTP trace receiver, decoding spans for assertions.

Jaeger (its OTLP port 4318) and the OpenTelemetry Collector cannot run on the test
machines. The agent's exporter only relies on the OTLP/HTTP contract, so the tests run it
against this receiver, which decodes bodies with the official ``opentelemetry-proto``
messages: a body the real backends would refuse is refused here too (400, kept in
``.errors``), and accepted spans come back as plain ``Span`` dataclasses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ._server import BodyError, LoopbackHTTPServer, _QuietHandler, read_body

__all__ = ["OTLPReceiver", "ReceivedRequest", "Span", "any_value", "attributes"]

_KINDS = {
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUS = {
    trace_pb2.Status.STATUS_CODE_UNSET: "UNSET",
    trace_pb2.Status.STATUS_CODE_OK: "OK",
    trace_pb2.Status.STATUS_CODE_ERROR: "ERROR",
}
_PATHS: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}


def any_value(value: common_pb2.AnyValue) -> Any:
    """Decode an OTLP ``AnyValue`` to str/int/float/bool/bytes/list/dict (None if empty)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """Decode a repeated ``KeyValue`` field to a dict."""
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class Span:
    """One decoded span, with ids as lower-case hex and enums as their short names."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: str
    status_message: str
    resource: dict[str, Any]
    scope: str
    start_ns: int
    end_ns: int
    links: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    scope_version: str = ""
    trace_state: str = ""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def is_root(self) -> bool:
        return self.parent_span_id == ""


@dataclass
class ReceivedRequest:
    """One POST as received: path, headers (lower-cased keys) and the decompressed body."""

    path: str
    headers: dict[str, str]
    body: bytes


def _decode_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    spans: list[Span] = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                spans.append(
                    Span(
                        name=sp.name,
                        trace_id=sp.trace_id.hex(),
                        span_id=sp.span_id.hex(),
                        parent_span_id=sp.parent_span_id.hex(),
                        kind=_KINDS.get(sp.kind, str(sp.kind)),
                        attributes=attributes(sp.attributes),
                        events=[(ev.name, attributes(ev.attributes)) for ev in sp.events],
                        status_code=_STATUS.get(sp.status.code, str(sp.status.code)),
                        status_message=sp.status.message,
                        resource=resource,
                        scope=ss.scope.name,
                        start_ns=sp.start_time_unix_nano,
                        end_ns=sp.end_time_unix_nano,
                        links=[
                            (ln.trace_id.hex(), ln.span_id.hex(), attributes(ln.attributes))
                            for ln in sp.links
                        ],
                        scope_version=ss.scope.version,
                        trace_state=sp.trace_state,
                    )
                )
    return spans


class OTLPReceiver(LoopbackHTTPServer):
    """Test stand-in for an OTLP/HTTP collector endpoint (like Jaeger's :4318). Not Jaeger.

    ``endpoint`` is the base URL to put in ``OTEL_EXPORTER_OTLP_ENDPOINT``; the exporter
    appends ``/v1/traces``. Accepts ``application/x-protobuf`` bodies, optionally gzip.
    Traces are decoded into ``spans()``; logs and metrics bodies are validated and kept
    raw in ``received``. Set ``fail_status`` (e.g. 503) to answer every export with that
    status instead (the request still counts in ``requests``), and ``delay`` (seconds) to
    answer slowly.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._spans: list[Span] = []
        self.received: list[ReceivedRequest] = []
        self.errors: list[str] = []
        self.requests = 0
        self.fail_status: int | None = None
        self.delay: float = 0.0

    def __enter__(self) -> OTLPReceiver:
        return super().__enter__()  # type: ignore[no-any-return]

    def handle_post(self, handler: _QuietHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path not in _PATHS:
            handler.send_plain(404, f"unknown OTLP path {path}\n")
            return
        with self.lock:
            self.requests += 1
        if self.delay:
            time.sleep(self.delay)
        try:
            body = read_body(handler)
        except BodyError as exc:
            self._reject(handler, exc.status, f"{path}: {exc.message}")
            return
        ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-protobuf":
            self._reject(handler, 415, f"{path}: unsupported Content-Type {ctype!r}")
            return
        if self.fail_status is not None:
            handler.send_plain(self.fail_status, "configured failure\n")
            return
        request_cls, response_cls = _PATHS[path]
        message = request_cls()
        try:
            message.ParseFromString(body)
        except (DecodeError, ValueError) as exc:
            self._reject(handler, 400, f"{path}: malformed protobuf: {exc}")
            return
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.received.append(ReceivedRequest(path, headers, body))
            if isinstance(message, trace_service_pb2.ExportTraceServiceRequest):
                self._spans.extend(_decode_spans(message))
        handler.send_bytes(200, response_cls().SerializeToString(), "application/x-protobuf")

    def _reject(self, handler: _QuietHandler, status: int, message: str) -> None:
        with self.lock:
            self.errors.append(message)
        handler.send_plain(status, message + "\n")

    def spans(self) -> list[Span]:
        """All spans received so far, in arrival order."""
        with self.lock:
            return list(self._spans)

    def wait_for_spans(
        self,
        predicate: Callable[[Span], bool] = lambda s: True,
        count: int = 1,
        timeout: float = 15,
    ) -> list[Span]:
        """Poll until at least ``count`` received spans match ``predicate``; return them all.

        On timeout raise ``AssertionError`` listing what did arrive (and any rejected bodies).
        """
        deadline = time.monotonic() + timeout
        while True:
            matching = [s for s in self.spans() if predicate(s)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                names = [(s.name, s.kind) for s in self.spans()]
                raise AssertionError(
                    f"expected >= {count} matching spans within {timeout}s, got "
                    f"{len(matching)}; received {len(names)} spans: {names[:50]}; "
                    f"requests={self.requests}; errors={self.errors[:5]}"
                )
            time.sleep(0.05)

    def clear(self) -> None:
        """Forget received spans, raw requests, errors and the request count."""
        with self.lock:
            self._spans.clear()
            self.received.clear()
            self.errors.clear()
            self.requests = 0
