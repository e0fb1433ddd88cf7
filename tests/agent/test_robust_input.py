"""Hostile or odd requests to a running app: the agent neither breaks nor amplifies them.

Each server kind runs twice, without and with ``spyglass run``, sharing the processes across
tests: malformed ``traceparent`` headers must start a fresh valid trace; 10,000 distinct
random paths must not grow the metric series (they all become ``http_route="unmatched"``);
non-UTF-8 request targets and huge headers must get the answer the app gives without the
agent, with no agent error and with span attributes truncated. Finally the text exposition
after all that mixed traffic must pass ``promtool check metrics``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.agent.robust_apps.harness import App, KeepAlive
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver, Span
from tests.support.procs import http_get
from tests.support.prom import parse, promtool_check_metrics, scrape, series, value

KINDS = ["gthread", "uvicorn"]
VALID_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Pair:
    def __init__(self, plain: App, agent: App, otlp: OTLPReceiver) -> None:
        self.plain, self.agent, self.otlp = plain, agent, otlp

    def server_spans(self, path: str) -> list[Span]:
        return self.otlp.wait_for_spans(
            lambda s: s.kind == "SERVER" and s.attributes.get("url.path") == path, timeout=10)


@pytest.fixture(scope="module", params=KINDS)
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with OTLPReceiver() as otlp, LokiReceiver() as loki:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "SPYGLASS_LOKI_URL": loki.endpoint,
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None}
        with App(request.param, agent=False) as plain, App(request.param, env=env) as agent:
            yield Pair(plain, agent, otlp)
            err = agent.proc.stderr()
            assert "spyglass:" not in err, err[-3000:]
            # Flask's own tracebacks for /boom are expected; no other traceback is.
            assert err.count("Traceback") == err.count("RuntimeError: boom"), err[-3000:]


BAD_TRACEPARENTS = {
    "garbage": "not a traceparent at all",
    "bad-version": f"ff-{VALID_TRACE}-00f067aa0ba902b7-01",
    "zero-trace": f"00-{'0' * 32}-00f067aa0ba902b7-01",
    "zero-span": f"00-{VALID_TRACE}-{'0' * 16}-01",
    "short": f"00-{VALID_TRACE[:20]}-00f067aa0ba902b7-01",
    "non-hex": f"00-{'z' * 32}-00f067aa0ba902b7-01",
    "huge": f"00-{VALID_TRACE}-00f067aa0ba902b7-01" + "-0" * 2000,
}


@pytest.mark.parametrize("name", sorted(BAD_TRACEPARENTS))
def test_malformed_traceparent_starts_a_new_trace(pair: Pair, name: str) -> None:
    path = f"/items/{abs(hash(name)) % 100000}"
    status, _, body = http_get(pair.agent.url(path),
                               headers={"traceparent": BAD_TRACEPARENTS[name]})
    assert (status, body) == http_get(pair.plain.url(path))[:3:2]
    span = pair.server_spans(path)[-1]
    assert span.is_root, span
    assert len(span.trace_id) == 32 and int(span.trace_id, 16) != 0
    assert span.trace_id != VALID_TRACE


def test_valid_traceparent_is_continued(pair: Pair) -> None:
    """The control for the malformed cases: a well-formed header is honoured."""
    path = "/items/777"
    http_get(pair.agent.url(path), headers={"traceparent": f"00-{VALID_TRACE}-00f067aa0ba902b7-01"})
    span = pair.server_spans(path)[-1]
    assert (span.trace_id, span.parent_span_id) == (VALID_TRACE, "00f067aa0ba902b7")


def test_random_paths_keep_series_bounded(pair: Pair) -> None:
    # 10,000 on uvicorn (fast keep-alive); 1,000 on gunicorn, which is slower per request.
    count = 10_000 if pair.agent.proc.argv[-1] == "fastapi_app:app" else 1_000
    conn = KeepAlive(pair.agent.port)
    try:
        for _ in range(count):
            status, _ = conn.get(f"/r/{uuid.uuid4().hex}/{uuid.uuid4().hex[:8]}")
            assert status == 404
    finally:
        conn.close()
    text = scrape(f"http://127.0.0.1:{pair.agent.metrics_port}/metrics")[1]
    families = parse(text)
    labels = series(families, "http_server_request_duration_seconds_count")
    routes = {s["http_route"] for s in labels}
    assert routes <= {"/", "/items/{item_id}", "/log/{tag}", "unmatched"}, routes
    assert len(labels) <= 10, labels
    assert value(families, "http_server_request_duration_seconds_count",
                 http_route="unmatched", http_response_status_code="404") >= count
    assert len(text) < 64 * 1024, f"exposition is {len(text)} bytes after random paths"
    assert "/r/" not in text


RAW_PATHS = [b"/caf\xe9", b"/items/\xff\xfe", b"/log/\xc3\x28", b"/%ff%fe?q=\xff"]


@pytest.mark.parametrize("raw", RAW_PATHS, ids=[p.decode("latin-1") for p in RAW_PATHS])
def test_non_utf8_path_answered_as_without_agent(pair: Pair, raw: bytes) -> None:
    status, _, body = http_get(b"http://127.0.0.1:%d%s" % (pair.agent.port, raw))
    assert (status, body) == http_get(b"http://127.0.0.1:%d%s" % (pair.plain.port, raw))[:3:2]


def test_huge_headers_truncated(pair: Pair) -> None:
    path = "/items/4242"
    headers = {"User-Agent": "u" * 60_000, "traceparent": "00-" + "a" * 4096}
    status, _, body = http_get(pair.agent.url(path), headers=headers)
    assert (status, body) == http_get(pair.plain.url(path), headers=headers)[:3:2]
    if status != 200:
        pytest.skip(f"the server itself refuses these headers ({status}), agent or not")
    span = pair.server_spans(path)[-1]
    assert span.is_root
    for key, val in span.attributes.items():
        assert len(str(val)) <= 4096, (key, len(str(val)))
    assert 0 < len(span.attributes["user_agent.original"]) < 60_000


def test_promtool_clean_after_mixed_traffic(pair: Pair) -> None:
    for path in ["/", "/items/1", "/log/x", "/boom", "/nope", "/items/abc"]:
        http_get(pair.agent.url(path))
    http_get(pair.agent.url("/"), headers={"traceparent": "junk"})
    text = scrape(f"http://127.0.0.1:{pair.agent.metrics_port}/metrics")[1]
    ok, output = promtool_check_metrics(text)
    assert ok, output
    assert "http_server_request_duration_seconds_bucket" in text
