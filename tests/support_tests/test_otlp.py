"""The OTLP stand-in decodes what the real OpenTelemetry SDK exporter sends."""

from __future__ import annotations

import gzip

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from tests.support.otlp import OTLPReceiver
from tests.support.procs import http_request


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_decodes_real_sdk_export(otlp_receiver: OTLPReceiver, compression: Compression) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{otlp_receiver.endpoint}/v1/traces", compression=compression, timeout=5
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "service.version": "1.2.3"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.support", "0.1")
    try:
        with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER) as parent:
            parent.set_attribute("http.route", "/items/{id}")
            parent.set_attribute("http.response.status_code", 500)
            parent.set_attribute("ratio", 0.25)
            parent.set_attribute("cached", False)
            parent.set_attribute("tags", ["a", "b"])
            with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT) as child:
                child.add_event("exception", {"exception.type": "ValueError"})
                child.set_status(Status(StatusCode.ERROR, "boom"))
    finally:
        provider.shutdown()

    spans = otlp_receiver.wait_for_spans(count=2, timeout=10)
    by_name = {s.name: s for s in spans}
    server, client = by_name["GET /items/{id}"], by_name["SELECT items"]

    assert server.kind == "SERVER" and client.kind == "CLIENT"
    assert server.parent_span_id == "" and server.is_root
    assert client.parent_span_id == server.span_id
    assert client.trace_id == server.trace_id
    assert len(server.trace_id) == 32 and len(server.span_id) == 16
    assert int(server.trace_id, 16) == parent.get_span_context().trace_id
    assert server.attributes == {
        "http.route": "/items/{id}",
        "http.response.status_code": 500,
        "ratio": 0.25,
        "cached": False,
        "tags": ["a", "b"],
    }
    assert client.events == [("exception", {"exception.type": "ValueError"})]
    assert (client.status_code, client.status_message) == ("ERROR", "boom")
    assert server.status_code == "UNSET"
    assert server.resource["service.name"] == "checkout"
    assert server.resource["service.version"] == "1.2.3"
    assert server.resource["telemetry.sdk.language"] == "python"
    assert (server.scope, server.scope_version) == ("tests.support", "0.1")
    assert 0 < server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns
    assert otlp_receiver.errors == []
    assert otlp_receiver.requests == 2  # one request per span with SimpleSpanProcessor
    if compression is Compression.Gzip:
        assert otlp_receiver.received[0].headers["content-encoding"] == "gzip"


def test_rejects_malformed_bodies(otlp_receiver: OTLPReceiver) -> None:
    url = f"{otlp_receiver.endpoint}/v1/traces"
    proto = {"Content-Type": "application/x-protobuf"}

    status, _, _ = http_request("POST", url, body=b"\xff\xff\xff\xff", headers=proto)
    assert status == 400
    status, _, _ = http_request(
        "POST", url, body=b"not gzip", headers={**proto, "Content-Encoding": "gzip"}
    )
    assert status == 400
    status, _, _ = http_request(
        "POST", url, body=b"{}", headers={"Content-Type": "application/json"}
    )
    assert status == 415
    assert len(otlp_receiver.errors) == 3
    assert otlp_receiver.spans() == []
    assert otlp_receiver.requests == 3


def test_empty_export_answers_protobuf_response(otlp_receiver: OTLPReceiver) -> None:
    body = gzip.compress(trace_service_pb2.ExportTraceServiceRequest().SerializeToString())
    status, headers, payload = http_request(
        "POST",
        f"{otlp_receiver.endpoint}/v1/traces",
        body=body,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-protobuf"
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.ParseFromString(payload)
    assert not response.HasField("partial_success")


def test_logs_and_metrics_are_kept_raw(otlp_receiver: OTLPReceiver) -> None:
    for path in ("/v1/logs", "/v1/metrics"):
        status, _, _ = http_request(
            "POST",
            otlp_receiver.endpoint + path,
            body=b"",
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert status == 200
    assert [r.path for r in otlp_receiver.received] == ["/v1/logs", "/v1/metrics"]
    assert otlp_receiver.spans() == []


def test_fail_status_and_clear(otlp_receiver: OTLPReceiver) -> None:
    otlp_receiver.fail_status = 503
    status, _, _ = http_request(
        "POST",
        f"{otlp_receiver.endpoint}/v1/traces",
        body=b"",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert status == 503
    assert otlp_receiver.requests == 1
    otlp_receiver.clear()
    assert otlp_receiver.requests == 0 and otlp_receiver.received == []


def test_wait_for_spans_times_out_with_context(otlp_receiver: OTLPReceiver) -> None:
    with pytest.raises(AssertionError, match="expected >= 1 matching spans"):
        otlp_receiver.wait_for_spans(timeout=0.2)


def test_standalone_start_stop() -> None:
    receiver = OTLPReceiver()
    receiver.start()
    try:
        assert receiver.endpoint == f"http://127.0.0.1:{receiver.port}"
    finally:
        receiver.stop()
    with pytest.raises(RuntimeError):
        _ = receiver.port
