"""The hand-written OTLP encoder against the SDK's own encoder, decoded with opentelemetry-proto.

Every field the SDK writes must come out the same, for every attribute type, events, links,
status, remote parents, trace state, several scopes and resources; otherwise a backend would
see different data under Spyglass than under the SDK exporter.
"""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from spyglass.export.otlp import encode_spans


def _provider(resource: Resource) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _spans() -> list:
    provider, exporter = _provider(Resource.create({"service.name": "enc", "n": 3,
                                                    "ratio": 0.5, "flag": True}))
    other, other_exporter = _provider(Resource.create({"service.name": "other"}))
    tracer = provider.get_tracer("scope.a", "1.2.3", schema_url="https://opentelemetry.io/s/1.26",
                                 attributes={"scope.attr": "x"})
    tracer_b = provider.get_tracer("scope.b")
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
    with tracer.start_as_current_span(
            "GET /items/{id}", context=set_span_in_context(NonRecordingSpan(remote)),
            kind=SpanKind.SERVER,
            attributes={"s": "text", "unicode": "żółw ☃", "i": 42, "neg": -7, "big": 2**62,
                        "f": 1.25, "b": False, "t": True, "strs": ["a", "b"], "ints": [1, 2],
                        "floats": [0.5], "bools": [True, False], "empty": ""},
            links=[Link(remote, {"link.attr": 1})]) as server:
        server.add_event("cache miss", {"key": "k1", "n": 2})
        server.add_event("bare event")
        with tracer_b.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as client:
            client.set_attribute("db.system.name", "postgresql")
            client.set_status(Status(StatusCode.ERROR, "boom: ünïcode"))
        with tracer.start_span("internal") as internal:
            internal.set_status(Status(StatusCode.OK))
        for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
            tracer_b.start_span(f"k{kind.value}", kind=kind).end()
    with other.get_tracer("scope.a").start_as_current_span("other root"):
        pass
    return list(exporter.get_finished_spans()) + list(other_exporter.get_finished_spans())


def test_encoding_matches_the_sdk_encoder() -> None:
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    theirs = sdk_encode(spans)
    # One deliberate difference: the SDK encoder leaves out a link's trace_state, which
    # trace.proto has (field 3); ours keeps it.
    links = [link for r in ours.resource_spans for s in r.scope_spans for sp in s.spans
             for link in sp.links]
    assert [link.trace_state for link in links] == ["vendor=v1"]
    for link in links:
        link.ClearField("trace_state")
    assert ours == theirs, (ours, theirs)
    assert len(ours.resource_spans) == 2
    assert sum(len(s.spans) for r in ours.resource_spans for s in r.scope_spans) == len(spans)


def test_encoding_is_stable_across_calls_with_cached_keys() -> None:
    spans = _spans()
    assert encode_spans(spans) == encode_spans(spans)


def test_empty_batch() -> None:
    assert ExportTraceServiceRequest.FromString(encode_spans([])) == ExportTraceServiceRequest()


@pytest.mark.parametrize("size", [0, 127, 128, 16383, 16384, 70000])
def test_long_values_round_trip(size: int) -> None:
    provider, exporter = _provider(Resource.create({}))
    with provider.get_tracer("t").start_as_current_span("x" * size, attributes={"v": "y" * size}):
        pass
    spans = exporter.get_finished_spans()
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert decoded == sdk_encode(spans)


def test_requests_concatenate_into_one_request() -> None:
    """Serialised requests concatenate into their merge (protobuf's rule): two encoded
    halves of a batch decode as one request with every span."""
    spans = _spans()
    joined = encode_spans(spans[:3]) + encode_spans(spans[3:])
    decoded = ExportTraceServiceRequest.FromString(joined)
    names = [sp.name for r in decoded.resource_spans for s in r.scope_spans for sp in s.spans]
    assert sorted(names) == sorted(s.name for s in spans)


def test_equal_attributes_on_span_event_and_link_keep_their_own_field_tags() -> None:
    """Encoded attributes are cached; the cache must tell a span's attribute from an event's
    or a link's with the same key and value (their field numbers differ)."""
    provider, exporter = _provider(Resource.create({}))
    tracer = provider.get_tracer("t")
    other = SpanContext(0x1, 0x2, is_remote=False, trace_flags=TraceFlags(1))
    for _ in range(2):  # the second round is served from the cache
        with tracer.start_as_current_span("x", attributes={"k": "v", "n": 7},
                                          links=[Link(other, {"k": "v", "n": 7})]) as span:
            span.add_event("e", {"k": "v", "n": 7})
    spans = exporter.get_finished_spans()
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert decoded == sdk_encode(spans)
    for sp in decoded.resource_spans[0].scope_spans[0].spans:
        assert [a.key for a in sp.attributes] == ["k", "n"]
        assert [a.key for a in sp.events[0].attributes] == ["k", "n"]
        assert [a.key for a in sp.links[0].attributes] == ["k", "n"]


def test_scopes_added_from_many_threads_at_once_keep_distinct_indexes() -> None:
    """Spans end on any thread; two threads adding new scopes at once must not share an
    index, or spans would be exported under another instrumentation scope. (The unlocked
    version's window was a few bytecodes wide; CPython seldom switches threads inside it,
    so this guards the property rather than reproducing the race on demand.)"""
    import sys
    import threading

    from spyglass.export.otlp import _SCOPE_TABLE, scope_index

    resource = Resource.create({})
    scopes = [object() for _ in range(400)]
    got: dict[int, int] = {}
    start = threading.Barrier(8)

    def add(part: list[object]) -> None:
        start.wait()
        for scope in part:
            got[id(scope)] = scope_index(resource, scope)

    threads = [threading.Thread(target=add, args=(scopes[i::8],)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(set(got.values())) == len(scopes)
    for scope in scopes:
        assert _SCOPE_TABLE[got[id(scope)]] == (resource, scope)


def test_span_context_fields_read_by_index_match_its_properties(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder reads a SpanContext's ids by tuple index where the API's layout allows
    (spyglass.spans.LAYOUT.context_is_tuple); with the pinned API it does, and the property path
    it falls back to otherwise encodes the very same bytes."""
    from spyglass import spans as spans_module

    assert spans_module.LAYOUT.context_is_tuple, "the OTel API's SpanContext layout changed"
    spans = _spans()
    fast = encode_spans(spans)
    monkeypatch.setattr(spans_module.LAYOUT, "context_is_tuple", False)
    assert encode_spans(spans) == fast


def test_light_spans_encode_as_their_records() -> None:
    """The common light span (a server or DB span) is encoded straight from its fields
    (``otlp._light_span``), any other through its record: both give the general path's bytes,
    which decode as the spans' own fields."""
    from spyglass.export import otlp
    from spyglass.spans import LightTracerProvider

    ended: list = []
    light = LightTracerProvider(TracerProvider(resource=Resource.create({"service.name": "l"})),
                                ended.append)
    tracer = light.get_tracer("light.scope", "1.0")
    other = light.get_tracer("other.scope")
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(1))
    root = tracer.start_span("GET", kind=SpanKind.SERVER,
                             attributes={"http.request.method": "GET", "url.path": "/x",
                                         "n": 3, "f": 0.5, "b": True, "l": ["a", "b"]})
    root.set_attribute("http.response.status_code", 200)
    root.update_name("GET /x")
    child = other.start_span("SELECT", context=set_span_in_context(root), kind=SpanKind.CLIENT,
                             attributes={"db.system.name": "sqlite"})
    child.end()
    failed = tracer.start_span("boom", context=set_span_in_context(root))
    failed.set_status(Status(StatusCode.ERROR, "bad"))
    failed.end()
    with_event = tracer.start_span("evented", context=set_span_in_context(root),
                                   kind=SpanKind.PRODUCER)
    with_event.add_event("e", {"k": "v"})
    with_event.end()
    from_remote = other.start_span("remote child", kind=SpanKind.CONSUMER,
                                   context=set_span_in_context(NonRecordingSpan(remote)))
    from_remote.end()
    root.end()
    assert len(ended) == 5
    fast = [s for s in ended if otlp._light_span(s) is not None]
    assert {s.name for s in fast} == {"SELECT", "remote child", "GET /x"}
    for span in ended:
        rec = otlp.as_record(span)
        assert otlp.encode_span(span) == (rec[0], otlp._field(b"\x12", otlp._span(rec)))
    decoded = ExportTraceServiceRequest.FromString(encode_spans(ended))
    got = {sp.name: sp for r in decoded.resource_spans for s in r.scope_spans for sp in s.spans}
    assert got["SELECT"].parent_span_id == root.get_span_context().span_id.to_bytes(8, "big")
    assert got["remote child"].trace_id == remote.trace_id.to_bytes(16, "big")
    assert got["remote child"].flags == 0x300  # has is_remote, parent is remote
    assert [(a.key, a.value.int_value) for a in got["GET /x"].attributes if a.key == "n"] == [
        ("n", 3)]
    assert got["GET /x"].kind == 2 and got["SELECT"].kind == 3  # SERVER, CLIENT
