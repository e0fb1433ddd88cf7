"""Spans and log lines still queued when the app is stopped are delivered, not lost.

The exporters send once a second; each test makes requests and signals the app at once, so
what it made is still queued. ``python flask_app.py`` (Werkzeug's server: SIGTERM is not
handled, SIGINT is a KeyboardInterrupt) and uvicorn (handles both, then re-raises the
signal after its own shutdown) are stopped with SIGTERM and SIGINT; the spans and log lines
must reach the receivers and the exit status must equal the no-agent run's.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from tests.agent.robust_apps.harness import App
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import http_get

N = 5


def stop(app: App, sig: signal.Signals) -> int:
    """Signal the app and return its exit status, re-sending the signal like an impatient user.

    Werkzeug's development server, without any agent, now and then ignores a SIGINT that
    lands while it starts a request thread (seen once in ~10 runs); a second Ctrl+C stops it.
    """
    proc = app.proc.proc
    assert proc is not None
    for _ in range(3):
        os.kill(proc.pid, sig)
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    return app.proc.stop(sig, timeout=5)  # kills the group and fails with the output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("kind", ["script", "uvicorn"])
def test_flush_on_stop(kind: str, sig: signal.Signals) -> None:
    with App(kind, agent=False) as plain:
        for i in range(N):
            http_get(plain.url(f"/log/{i}"))
        expected = stop(plain, sig)

    with OTLPReceiver() as otlp, LokiReceiver() as loki:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "SPYGLASS_LOKI_URL": loki.endpoint,
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None}
        with App(kind, env=env) as app:
            otlp.wait_for_spans(lambda s: s.kind == "SERVER", timeout=10)  # the readiness GET
            otlp.clear()
            for i in range(N):
                assert http_get(app.url(f"/log/{i}"))[0] == 200
            code = stop(app, sig)
            assert code == expected, app.proc.describe()
            spans = [s for s in otlp.spans() if s.name == "GET /log/{tag}"]
            assert len(spans) == N, (otlp.spans(), app.proc.describe())
            lines = [e for e in loki.entries() if " log " in e.line and "msg=" in e.line]
            tags = {e.line.rsplit(" ", 1)[-1].strip('"') for e in lines}
            assert {str(i) for i in range(N)} <= tags, (lines, app.proc.describe())
            # Every in-request line carries its request's trace id.
            trace_ids = {s.trace_id for s in spans}
            assert all(e.metadata.get("trace_id") in trace_ids for e in lines), lines
            err = app.proc.stderr()
            assert "spyglass:" not in err, err
