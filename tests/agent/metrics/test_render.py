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
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from spyglass.metrics.collector import DirectoryCollector, ExemplarStore, SimpleFamily
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


def _fake_proc(root: Path, pid: int) -> None:
    """A /proc entry for ``pid`` with fixed numbers, so both renderings see the same values."""
    base = root / str(pid)
    (base / "fd").mkdir(parents=True)
    for fd in range(3):
        (base / "fd" / str(fd)).write_text("")
    fields = ["S", *["0"] * 10, "1234", "567", *["0"] * 4, "7"]  # utime, stime, ..., threads
    (base / "stat").write_text(f"{pid} (python) " + " ".join(fields))
    (base / "statm").write_text("1000 2500 0 0 0 0 0")


@pytest.mark.parametrize("openmetrics", [False, True])
def test_render_matches_prometheus_client(tmp_path: Path, openmetrics: bool) -> None:
    exemplars = _populate(tmp_path)
    extra = SimpleFamily("target_info", 'Target "metadata"', "gauge",
                         ["service_name", "deployment_environment"])
    extra.add(["svc", 'prod "eu"\\'], 1.0)
    # A fixed /proc for this process: live RSS/CPU samples would change between renderings.
    _fake_proc(tmp_path / "proc", os.getpid())
    collector = DirectoryCollector(str(tmp_path), exemplars, extra=[extra],
                                   proc_root=str(tmp_path / "proc"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    expected = (om_latest if openmetrics else generate_latest)(registry)
    body = collector.render(openmetrics)
    assert body == expected
    assert b"process_cpu_seconds_total{pid=" in body and b"target_info{" in body
    # Cached prefixes and headers give the same bytes on the next scrape.
    assert collector.render(openmetrics) == expected


def test_workers_and_scrapes_do_not_import_prometheus_clients_exposition(tmp_path: Path) -> None:
    """Importing prometheus_client's package costs ~90 ms at every app start; recording values
    and rendering a scrape must not need it (spyglass.metrics._prom)."""
    import subprocess
    import sys

    code = f"""
import sys
from spyglass.metrics.collector import DirectoryCollector, ExemplarStore, SimpleFamily
from spyglass.metrics.store import Counter, Histogram, ProcessStore
store = ProcessStore({str(tmp_path)!r})
Counter(store, "demo_total", "x", ["a"]).labels("1").inc()
Histogram(store, "demo_seconds", "x", [], buckets=[0.1]).labels().observe(0.05)
ex = ExemplarStore()
ex.offer("demo_seconds", {{}}, "0.1", 0.05, "ab" * 16, "cd" * 8)
body = DirectoryCollector({str(tmp_path)!r}, ex).render(True)
assert b"demo_total" in body and b"trace_id" in body, body
print(sorted(m for m in sys.modules if m.startswith("prometheus_client")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_render_stays_exact_as_new_series_appear(tmp_path: Path) -> None:
    """The render plan is rebuilt when series appear; each series' formatted text is kept
    across rebuilds, so the bytes must still match prometheus_client's after every change."""
    exemplars = _populate(tmp_path)
    collector = DirectoryCollector(str(tmp_path), exemplars, proc_root=str(tmp_path / "none"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    store = ProcessStore(str(tmp_path), pid=os.getpid)
    hist = Histogram(store, "http_server_request_duration_seconds", "Duration of\nrequests",
                     ["http_request_method", "http_route"], buckets=[0.01, 0.1, 1.0])
    counter = Counter(store, "spyglass_exported_total", 'Spans "exported" \\ total', ["signal"])
    for step in range(4):
        assert collector.render(True) == om_latest(registry)
        assert collector.render(False) == generate_latest(registry)
        hist.labels("PUT", f"/new/{step}").observe(0.05 * step)  # a new label set: new groups
        counter.labels(f"signal-{step}").inc()  # and a new sample series
        exemplars.offer("http_server_request_duration_seconds",
                        {"http_request_method": "PUT", "http_route": f"/new/{step}"},
                        "0.1", 0.05, f"{step:032x}", "cd" * 8)
