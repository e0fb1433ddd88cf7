"""The server span's parent: extracted from the request's headers, and ``extract`` is skipped
only when none of the configured propagator's headers is present.

``server.asgi_call`` and ``server.wsgi_call`` look for the propagator's ``fields`` while they
read the headers and skip ``propagate.extract`` when none is there (a cost paid on every
request otherwise). These tests pin what must not change: a W3C parent and baggage are still
picked up, in any header case, and a propagator whose headers we cannot know (a custom one)
still runs on every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from spyglass import server
from spyglass.spans import LightSpan, LightTracerProvider

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LightSpan]]:
    spans: list[LightSpan] = []
    provider = LightTracerProvider(TracerProvider(), spans.append)
    monkeypatch.setattr(server._setup, "tracer", provider.get_tracer(server.__name__, "1"))
    previous = propagate.get_global_textmap()
    yield spans
    propagate.set_global_textmap(previous)


def _asgi(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: dict, receive: Any, send: Any) -> None:
        seen["baggage"] = baggage.get_baggage("tenant")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"",
             "headers": [(b"host", b"example.test"), *headers], "scheme": "http",
             "client": ("127.0.0.1", 1234)}
    asyncio.run(server.asgi_call(app, scope, receive, send))
    return seen


def _wsgi(environ_headers: dict[str, str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(environ: dict, start_response: Any) -> list[bytes]:
        seen["baggage"] = baggage.get_baggage("tenant")
        start_response("200 OK", [])
        return [b"ok"]

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "wsgi.url_scheme": "http",
               "HTTP_HOST": "example.test", **environ_headers}
    body = server.wsgi_call(app, environ, lambda status, headers, exc_info=None: None)
    list(body)
    body.close()
    return seen


def test_no_propagation_header_starts_a_new_trace(ended: list[LightSpan]) -> None:
    _asgi([(b"accept", b"*/*")])
    _wsgi({"HTTP_ACCEPT": "*/*"})
    assert len(ended) == 2
    for span in ended:
        assert span.parent is None and span.context.trace_id not in (0, TRACE_ID)


def test_asgi_traceparent_and_baggage_are_extracted(ended: list[LightSpan]) -> None:
    seen = _asgi([(b"traceparent", TRACEPARENT.encode()), (b"baggage", b"tenant=acme")])
    (span,) = ended
    assert span.parent is not None and span.parent.is_remote
    assert (span.context.trace_id, span.parent.span_id) == (TRACE_ID, PARENT_ID)
    assert seen["baggage"] == "acme"


def test_asgi_header_names_in_any_case(ended: list[LightSpan]) -> None:
    """ASGI servers lowercase header names; one that does not must not lose the parent."""
    _asgi([(b"TraceParent", TRACEPARENT.encode())])
    assert ended[0].context.trace_id == TRACE_ID


def test_asgi_baggage_alone_is_extracted(ended: list[LightSpan]) -> None:
    seen = _asgi([(b"baggage", b"tenant=solo")])
    assert seen["baggage"] == "solo" and ended[0].parent is None


def test_wsgi_traceparent_and_baggage_are_extracted(ended: list[LightSpan]) -> None:
    seen = _wsgi({"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_BAGGAGE": "tenant=acme"})
    (span,) = ended
    assert span.parent is not None and span.context.trace_id == TRACE_ID
    assert seen["baggage"] == "acme"


class _VendorPropagator(TextMapPropagator):
    """A propagator that reads a header it does not list in ``fields`` (some do)."""

    def extract(self, carrier: CarrierT, context: Context | None = None,
                getter: Getter[CarrierT] = None) -> Context:  # type: ignore[assignment]
        values = getter.get(carrier, "x-vendor-trace") if getter else None
        if not values:
            return context or Context()
        parent = SpanContext(int(values[0], 16), PARENT_ID, is_remote=True,
                             trace_flags=TraceFlags(1))
        return set_span_in_context(NonRecordingSpan(parent), context)

    def inject(self, carrier: CarrierT, context: Context | None = None,
               setter: Setter[CarrierT] = None) -> None:  # type: ignore[assignment]
        pass

    @property
    def fields(self) -> set[str]:
        return set()


def test_an_unknown_propagator_runs_on_every_request(ended: list[LightSpan]) -> None:
    propagate.set_global_textmap(_VendorPropagator())
    assert server._propagation_fields() == (None, None)
    _asgi([(b"x-vendor-trace", f"{TRACE_ID:x}".encode())])
    _wsgi({"HTTP_X_VENDOR_TRACE": f"{TRACE_ID:x}"})
    assert [span.context.trace_id for span in ended] == [TRACE_ID, TRACE_ID]


def test_default_propagators_fields_are_known() -> None:
    headers, environ = server._propagation_fields()
    assert headers is not None and environ is not None
    assert {b"traceparent", b"tracestate", b"baggage"} <= headers
    assert {"HTTP_TRACEPARENT", "HTTP_TRACESTATE", "HTTP_BAGGAGE"} <= environ
