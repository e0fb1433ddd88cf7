"""Backends down or hung: the app's answers, latency and memory do not change.

The OTLP and Loki endpoints point first at a closed port (connection refused), then at a
``BlackHoleServer`` (accepts, never answers: a hung Jaeger or Loki). The same Flask app under
gunicorn answers a fixed request mix without the agent (the baseline) and under
``spyglass run``; every response must be byte-identical, no request may be slow, the worker's
memory must stop growing once the bounded queues are full, the self-metrics must show the
drops, stderr must carry exactly one warning per signal, and SIGTERM must still stop the app
promptly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.agent.robust_apps.harness import App, rss_bytes, worker_pid
from tests.support.blackhole import BlackHoleServer
from tests.support.procs import http_get
from tests.support.waiting import closed_port, wait_until

PATHS = ["/", "/items/1", "/items/22", "/log/a", "/no/such/page", "/boom"]
QUEUE = 100


def _answers(app: App, count: int, started: int = 0) -> Iterator[tuple[str, int, bytes, float]]:
    for i in range(started, started + count):
        path = PATHS[i % len(PATHS)]
        t0 = time.perf_counter()
        status, _, body = http_get(app.url(path))
        yield path, status, body, time.perf_counter() - t0


@pytest.fixture(scope="module")
def baseline() -> dict[str, tuple[int, bytes]]:
    """What each path answers with no agent at all."""
    with App("gunicorn", agent=False) as app:
        return {path: (status, body) for path, status, body, _ in _answers(app, len(PATHS))}


@pytest.fixture(params=["closed-port", "black-hole"])
def dead_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "closed-port":
        yield f"http://127.0.0.1:{closed_port()}"
        return
    with BlackHoleServer() as hole:
        yield hole.endpoint


def test_dead_backends_never_hurt_the_app(baseline: dict[str, tuple[int, bytes]],
                                           dead_backend: str,
                                           request: pytest.FixtureRequest) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": dead_backend, "SPYGLASS_LOKI_URL": dead_backend,
           "SPYGLASS_MAX_QUEUE_SIZE": str(QUEUE), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None}
    with App("gunicorn", env=env) as app:
        slowest = 0.0
        for path, status, body, took in _answers(app, 300):
            assert (status, body) == baseline[path], path
            slowest = max(slowest, took)
        assert slowest < 1.0, f"a request took {slowest:.2f}s with the backend down"

        # The first export attempt imports the OTLP exporter (a one-time ~17 MiB); after it,
        # with the queues full (100 items, hundreds produced per second) memory must be flat.
        wait_until(lambda: app.metric("spyglass_export_errors_total", signal="traces"),
                   timeout=20, interval=0.2, message="no trace export was attempted")
        for _ in _answers(app, 60):
            pass
        pid = worker_pid(app)
        before = rss_bytes(pid)
        for path, status, body, took in _answers(app, 1200, started=300):
            assert (status, body) == baseline[path], path
            slowest = max(slowest, took)
        growth = rss_bytes(pid) - before
        assert slowest < 1.0, f"a request took {slowest:.2f}s with the backend down"
        assert growth < 3 * 2**20, f"worker RSS grew {growth / 2**20:.1f} MiB over 1200 requests"

        def drops_counted() -> dict:  # type: ignore[type-arg]
            m = app.metrics()
            from tests.support.prom import value

            seen = {
                "traces dropped": value(m, "spyglass_dropped_total", signal="traces"),
                "logs dropped": value(m, "spyglass_dropped_total", signal="logs"),
                "trace export errors": value(m, "spyglass_export_errors_total",
                                             signal="traces"),
                "log export errors": value(m, "spyglass_export_errors_total", signal="logs"),
            }
            return m if all(seen.values()) else {}

        # A hung backend fails an export only after the export timeout (5 s by default).
        m = wait_until(drops_counted, timeout=20, interval=0.5,
                       message="self-metrics never showed the drops")
        from tests.support.prom import series, value

        if request.node.callspec.params["dead_backend"] == "black-hole":
            # Each export hangs for the export timeout, so the bounded queue fills up behind
            # it. (A refused connection fails at once: whether the queue is ever full when a
            # span arrives is then a matter of thread timing, and those drops are counted as
            # failed exports instead.)
            assert value(m, "spyglass_dropped_total", signal="traces", reason="queue_full") > 0
        assert value(m, "spyglass_exported_total", signal="traces") == 0
        for labels in series(m, "spyglass_queue_size"):
            assert value(m, "spyglass_queue_size", **labels) <= QUEUE, labels

        t0 = time.monotonic()
        code = app.proc.stop()
        took = time.monotonic() - t0
        assert code == 0, app.proc.describe()
        assert took < 5.0, f"SIGTERM took {took:.1f}s with a dead backend"
        err = app.proc.stderr()
        # The app's own /boom tracebacks are expected; none may come from the agent.
        assert err.count("Traceback") == err.count("RuntimeError: boom"), err[-3000:]
        assert "/spyglass/" not in err and "opentelemetry" not in err, err[-3000:]
        for signal in ("traces", "logs"):
            warnings = [line for line in err.splitlines() if f"cannot export {signal}" in line]
            assert len(warnings) == 1, f"{signal}: {warnings}\n{err[-3000:]}"
