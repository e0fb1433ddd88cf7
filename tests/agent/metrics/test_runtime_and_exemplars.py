"""Runtime metrics and exemplars as Prometheus scrapes them from a real app.

FastAPI under ``uvicorn --workers 2`` (a supervisor that owns /metrics, plus two spawned
workers): per-process CPU, RSS, open fds and threads for every live process, GC collections and
pause time, asyncio event-loop lag per worker; latency buckets carry the trace ids of exported
spans in OpenMetrics, and the plain text exposition stays promtool-clean.
"""

from __future__ import annotations

from tests.agent import check_spans, drive, launch
from tests.support.prom import parse, promtool_check_metrics, scrape, series, value
from tests.support.waiting import free_port, wait_until


def _uvicorn(port: int, workers: int) -> list[str]:
    return ["uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]


def test_runtime_metrics_and_exemplars(otlp_receiver, loki_receiver):
    port = free_port()
    launched = launch(_uvicorn(port, 2), otlp_receiver, loki_receiver, app_port=port)
    with launched.proc:
        wait_until(lambda: len(launched.proc.children()) >= 2, timeout=20)
        ids = list(range(9000, 9030))
        drive(launched.base, ids, concurrency=4)
        spans = check_spans(otlp_receiver, ids)
        exported = {s.trace_id for s in spans.values()}

        def runtime_ready() -> dict | None:  # type: ignore[type-arg]
            families = parse(scrape(launched.metrics_url)[1])
            lag = series(families, "python_asyncio_event_loop_lag_seconds")
            gcs = value(families, "python_gc_collections_total")
            return families if lag and gcs > 0 else None

        families = wait_until(runtime_ready, timeout=20,
                              message="no event-loop lag or GC samples")
        pids = {s["pid"] for s in series(families, "process_resident_memory_bytes")}
        # The supervisor and both workers are live processes of this app.
        assert len(pids) >= 3, pids
        assert {s["pid"] for s in series(families, "process_cpu_seconds_total")} == pids
        for name in ("process_open_fds", "process_threads", "process_resident_memory_bytes"):
            for labels in series(families, name):
                assert value(families, name, pid=labels["pid"]) > 0, (name, labels)
        assert value(families, "python_gc_duration_seconds_count") == value(
            families, "python_gc_collections_total")
        lag_pids = {s["pid"] for s in series(families, "python_asyncio_event_loop_lag_seconds")}
        assert lag_pids <= pids and lag_pids, lag_pids

        content_type, text = scrape(launched.metrics_url, openmetrics=True)
        assert content_type.startswith("application/openmetrics-text")
        exemplar_ids = {
            line.split('trace_id="', 1)[1][:32]
            for line in text.splitlines()
            if line.startswith("http_server_request_duration_seconds_bucket") and "# {" in line
        }
        assert exemplar_ids, "no exemplar on the latency histogram"
        assert exemplar_ids & exported, (exemplar_ids, len(exported))

        content_type, plain = scrape(launched.metrics_url)
        assert content_type.startswith("text/plain")
        assert "# {" not in plain
        ok, output = promtool_check_metrics(plain)
        assert ok, output
