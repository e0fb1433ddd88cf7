"""Prometheus metrics for one app instance: instruments, the shared directory, ``/metrics``.

:func:`setup` runs in every process of the app. The first one (no owner recorded in the
environment) creates the metrics directory, binds the ``/metrics`` port and records itself as
the owner in ``os.environ``, which every forked or spawned process inherits; the others only
write their own files. See :mod:`spyglass.metrics.store` and :mod:`spyglass.metrics.collector`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from spyglass import forksafe
from spyglass._log import get_logger
from spyglass.config import ENV_METRICS_DIR, ENV_METRICS_OWNER, Config
from spyglass.metrics.collector import (
    DirectoryCollector,
    ExemplarClient,
    ExemplarStore,
    SimpleFamily,
)
from spyglass.metrics.store import Counter, Gauge, Histogram, ProcessStore

__all__ = ["DB_BUCKETS", "HTTP_BUCKETS", "Instruments", "get", "setup"]

#: OTel semantic-convention buckets for http.server.request.duration (seconds).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
DB_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Instruments:
    """Every metric the agent records, created once per app instance."""

    store: ProcessStore
    http_server_duration: Histogram
    http_server_active: Gauge
    server_capacity: Gauge
    http_client_duration: Histogram
    db_client_duration: Histogram
    celery_task_duration: Histogram
    celery_published: Counter
    celery_queue_length: Gauge
    gc_collections: Counter
    gc_duration: Histogram
    loop_lag: Gauge
    start_time: Gauge
    exported: Counter
    dropped: Counter
    export_errors: Counter
    queue_size: Gauge
    integration_status: Gauge
    overflow: Counter
    internal_errors: Counter


_instruments: Instruments | None = None


def get() -> Instruments | None:
    """The instruments, or None when metrics are off (callers then record nothing)."""
    return _instruments


def _make(store: ProcessStore, limit: int) -> Instruments:
    overflow = Counter(store, "spyglass_metric_overflow", "Observations folded into the "
                       "overflow series because a metric hit its label-set limit", ["metric"])

    def on_overflow(name: str) -> None:
        overflow.labels(name).inc()

    kw: dict[str, Any] = {"limit": limit, "on_overflow": on_overflow}
    http_labels = ["http_request_method", "http_route", "http_response_status_code"]
    return Instruments(
        store=store,
        http_server_duration=Histogram(
            store, "http_server_request_duration_seconds",
            "Duration of HTTP server requests.", http_labels, buckets=HTTP_BUCKETS, **kw),
        http_server_active=Gauge(store, "http_server_active_requests",
                                 "Number of active HTTP server requests.", mode="livesum"),
        server_capacity=Gauge(store, "spyglass_server_capacity",
                              "Concurrent requests the server's live workers can take.",
                              mode="livesum"),
        http_client_duration=Histogram(
            store, "http_client_request_duration_seconds", "Duration of HTTP client requests.",
            ["http_request_method", "server_address", "http_response_status_code"],
            buckets=HTTP_BUCKETS, **kw),
        db_client_duration=Histogram(
            store, "db_client_operation_duration_seconds",
            "Duration of database client operations.", ["db_system_name", "db_operation_name"],
            buckets=DB_BUCKETS, **kw),
        celery_task_duration=Histogram(
            store, "celery_task_duration_seconds", "Duration of Celery task executions.",
            ["task_name", "outcome"], buckets=DB_BUCKETS, **kw),
        celery_published=Counter(store, "celery_tasks_published",
                                 "Celery tasks sent to the broker.", ["task_name"], **kw),
        celery_queue_length=Gauge(store, "celery_queue_length",
                                  "Messages waiting in a Celery queue.", ["queue"], mode="max",
                                  **kw),
        gc_collections=Counter(store, "python_gc_collections",
                               "Garbage collections, by generation.", ["generation"]),
        gc_duration=Histogram(store, "python_gc_duration_seconds",
                              "Time the garbage collector paused the process, by generation.",
                              ["generation"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                       0.025, 0.05, 0.1, 0.25, 1.0)),
        loop_lag=Gauge(store, "python_asyncio_event_loop_lag_seconds", "How late the asyncio event "
                       "loop ran a callback scheduled on time, in seconds.", mode="liveall"),
        start_time=Gauge(store, "process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.",
                         mode="liveall"),
        exported=Counter(store, "spyglass_exported", "Telemetry items exported, by signal.",
                         ["signal"]),
        dropped=Counter(store, "spyglass_dropped", "Telemetry items dropped, by signal and "
                        "reason.", ["signal", "reason"]),
        export_errors=Counter(store, "spyglass_export_errors", "Failed export attempts.",
                              ["signal"]),
        queue_size=Gauge(store, "spyglass_queue_size", "Items waiting to be exported.",
                         ["signal"], mode="livesum"),
        integration_status=Gauge(store, "spyglass_integration_status",
                                 "1 when an integration is active, 0 when it failed.",
                                 ["integration"], mode="max"),
        overflow=overflow,
        internal_errors=Counter(store, "spyglass_internal_errors",
                                "Errors the agent caught in its own code, by component.",
                                ["component"]),
    )


def _target_info(config: Config) -> SimpleFamily:
    labels = {"service_name": config.service_name,
              "service_version": config.service_version or "",
              "deployment_environment": config.environment}
    fam = SimpleFamily("target_info", "Target metadata", "gauge", list(labels))
    fam.add(list(labels.values()), 1.0)
    return fam


def setup(config: Config) -> Instruments | None:
    """Create this process's instruments; in the owner, also serve ``/metrics``."""
    global _instruments
    if not config.metrics:
        return None
    owner = os.environ.get(ENV_METRICS_OWNER)
    directory = os.environ.get(ENV_METRICS_DIR)
    is_owner = not owner or not directory or not os.path.isdir(directory)
    if is_owner:
        directory = tempfile.mkdtemp(prefix="spyglass-metrics-")
    assert directory is not None
    store = ProcessStore(directory)
    instruments = _make(store, config.cardinality_limit)
    if is_owner:
        exemplars = ExemplarStore()
        try:
            _serve(config, directory, exemplars)
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            get_logger().warning(
                "cannot serve /metrics on %s:%d (%s); metrics are off for this process. "
                "Set SPYGLASS_METRICS_PORT to a free port.",
                config.metrics_host, config.metrics_port, exc.strerror or exc)
            return None
        store.exemplars = exemplars
        os.environ[ENV_METRICS_OWNER] = str(os.getpid())
        os.environ[ENV_METRICS_DIR] = directory
        owner_pid = os.getpid()
        atexit.register(_cleanup, directory, owner_pid)
    else:
        store.exemplars = ExemplarClient(directory)

    def _after_fork() -> None:
        store.exemplars = ExemplarClient(directory)
        instruments.start_time.labels().set(time.time())

    forksafe.register_after_in_child(_after_fork)
    # Series a healthy agent never increments still exist, at 0: dashboards show a green 0
    # rather than "No data", and rate() works from the first failure on.
    for signal in ("traces", "logs"):
        instruments.exported.labels(signal)
        instruments.export_errors.labels(signal)
        for reason in ("queue_full", "export_failed", "shutdown"):
            instruments.dropped.labels(signal, reason)
    instruments.start_time.labels().set(_process_start_time())
    _instruments = instruments
    return instruments


def _process_start_time() -> float:
    """When this process started, from /proc as prometheus_client's process collector reads
    it (importing psutil for this cost milliseconds of every app's startup)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except Exception:  # noqa: BLE001 - not Linux
        return time.time()


def _serve(config: Config, directory: str, exemplars: ExemplarStore) -> None:
    """Serve ``/metrics`` from a daemon thread: the collector's own renderer, both formats.

    prometheus_client's ``start_http_server`` would render through its generic exposition,
    which was 4-8x slower on a 4-worker, 500-route app (see ``DirectoryCollector.render``).
    Prometheus asks for OpenMetrics (exemplars) in its Accept header; anything else gets the
    text format. gzip when asked, at level 1 (a 1 MiB body at level 9 costs ~30 ms).
    """
    import gzip
    import socket
    import threading
    from socketserver import TCPServer, ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    collector = DirectoryCollector(directory, exemplars, extra=[_target_info(config)])
    collector.start_folding()

    def app(environ: dict, start_response: Any) -> list[bytes]:
        accept = environ.get("HTTP_ACCEPT", "")
        om = any(part.split(";", 1)[0].strip() == "application/openmetrics-text"
                 for part in accept.split(","))
        try:
            body = collector.render(om)
        except Exception:  # noqa: BLE001
            get_logger().warning("rendering /metrics failed", exc_info=True)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"spyglass: rendering /metrics failed\n"]
        headers = [("Content-Type", _OM_TYPE if om else _TEXT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True
        address_family = socket.AF_INET6 if ":" in config.metrics_host else socket.AF_INET

        def server_bind(self) -> None:
            # HTTPServer.server_bind looks the host's FQDN up in DNS (socket.getfqdn), for
            # SERVER_NAME only: a reverse lookup that takes seconds where DNS is slow or
            # gone, all of it before the app starts.
            TCPServer.server_bind(self)
            host, port = self.server_address[:2]
            self.server_name, self.server_port = str(host), int(port)
            self.setup_environ()

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = make_server(config.metrics_host, config.metrics_port, app, Server, Quiet)
    exemplars.serve(directory)
    threading.Thread(target=httpd.serve_forever, name="spyglass-metrics", daemon=True).start()


_TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _cleanup(directory: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        shutil.rmtree(directory, ignore_errors=True)
