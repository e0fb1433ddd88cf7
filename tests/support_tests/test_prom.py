"""The Prometheus helpers parse and lint real prometheus_client output."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import start_http_server
from tests.support import prom
from tests.support.loki import LokiReceiver


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    exported = Counter("spyglass_exported", "Items exported", ["signal"], registry=reg)
    exported.labels("traces").inc(3)
    exported.labels("logs").inc(2)
    duration = Histogram(
        "http_server_request_duration_seconds",
        "Server request duration",
        ["http_request_method", "http_route"],
        buckets=(0.1, 0.5, 1.0),
        registry=reg,
    )
    duration.labels("GET", "/items/{id}").observe(0.05)
    duration.labels("GET", "/items/{id}").observe(0.7)
    duration.labels("POST", "/orders").observe(0.2)
    return reg


def test_parse_value_and_series(registry: CollectorRegistry) -> None:
    families = prom.parse(generate_latest(registry).decode())
    assert families["spyglass_exported"].type == "counter"
    assert prom.value(families, "spyglass_exported_total") == 5.0
    assert prom.value(families, "spyglass_exported_total", signal="logs") == 2.0
    assert prom.value(families, "spyglass_exported_total", signal="metrics") == 0.0
    assert prom.value(families, "no_such_metric") == 0.0

    name = "http_server_request_duration_seconds"
    assert prom.value(families, f"{name}_count") == 3.0
    assert prom.value(families, f"{name}_count", http_route="/items/{id}") == 2.0
    assert prom.value(families, f"{name}_bucket", http_route="/items/{id}", le=0.5) == 1.0
    assert prom.value(families, f"{name}_bucket", le="+Inf") == 3.0
    assert sorted(s["http_route"] for s in prom.series(families, f"{name}_count")) == [
        "/items/{id}",
        "/orders",
    ]


def test_promtool_accepts_generated_and_rejects_broken(registry: CollectorRegistry) -> None:
    text = generate_latest(registry).decode()
    ok, output = prom.promtool_check_metrics(text)
    assert ok, output

    ok, output = prom.promtool_check_metrics('broken{label="unterminated 1\n')
    assert not ok
    assert "parsing error" in output

    ok, output = prom.promtool_check_metrics("# TYPE requests counter\nrequests 1\n")
    assert not ok
    assert "_total" in output


def test_scrape_text_and_openmetrics(registry: CollectorRegistry) -> None:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        ctype, body = prom.scrape(url)
        assert ctype.startswith("text/plain")
        assert prom.value(prom.parse(body), "spyglass_exported_total") == 5.0

        ctype, body = prom.scrape(url, openmetrics=True)
        assert ctype.startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        families = prom.parse(body)
        assert prom.value(families, "spyglass_exported_total", signal="traces") == 3.0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_scrape_raises_on_error_status(loki_receiver: LokiReceiver) -> None:
    with pytest.raises(AssertionError, match="answered 404"):
        prom.scrape(f"{loki_receiver.endpoint}/metrics")


def test_openmetrics_parse_is_autodetected() -> None:
    text = "# TYPE jobs counter\njobs_total 4.0\n# EOF\n"
    assert prom.value(prom.parse(text), "jobs_total") == 4.0
    with pytest.raises(ValueError):
        prom.parse("# TYPE jobs counter\njobs_total 4.0\n", openmetrics=True)
