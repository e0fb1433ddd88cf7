"""The owner's direct renderer against prometheus_client's exposition of the same data.

``DirectoryCollector.render`` formats series itself (with cached prefixes) for speed; a
scraper must not be able to tell: both formats, counters, gauges, histograms with exemplars,
label values that need escaping, and the small families at the end, byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from spyglass.metrics.collector import DirectoryCollector, ExemplarStore
from spyglass.metrics.store import Counter, Gauge, Histogram, ProcessStore


def _populate(directory: Path) -> ExemplarStore:
    store = ProcessStore(str(directory), pid=os.getpid)
    hist = Histogram(store, "http_server_request_duration_seconds", "Duration of\nrequests",
                     ["http_request_method", "http_route"], buckets=[0.01, 0.1, 1.0])
    for i, value in enumerate([0.005, 0.05, 0.5, 5.0, 0.05]):
        hist.labels("GET", f'/items/{{id}}/"{i % 2}"\\x\n').observe(value)
    hist.labels("POST", "/").observe(12345678.5)
    counter = Counter(store, "spyglass_exported_total", 'Spans "exported" \\ total', ["signal"])
    counter.labels("traces").inc(3)
    counter.labels("logs").inc(0.5)
    gauge = Gauge(store, "http_server_active_requests", "In flight", [])
    gauge.labels().inc(2)
    exemplars = ExemplarStore()
    exemplars.offer("http_server_request_duration_seconds",
                    {"http_request_method": "GET", "http_route": '/items/{id}/"0"\\x\n'},
                    "0.1", 0.05, "ab" * 16, "cd" * 8)
    return exemplars


@pytest.mark.parametrize("openmetrics", [False, True])
def test_render_matches_prometheus_client(tmp_path: Path, openmetrics: bool) -> None:
    exemplars = _populate(tmp_path)
    extra = GaugeMetricFamily("target_info", "Target metadata", labels=["service_name"])
    extra.add_metric(["svc"], 1.0)
    # No /proc: live RSS/CPU samples would change between the two renderings.
    collector = DirectoryCollector(str(tmp_path), exemplars, extra=[extra],
                                   proc_root=str(tmp_path / "no-proc"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    expected = (om_latest if openmetrics else generate_latest)(registry)
    assert collector.render(openmetrics) == expected
    # Cached prefixes and headers give the same bytes on the next scrape.
    assert collector.render(openmetrics) == expected
