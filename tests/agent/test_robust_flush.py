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
import sys
from pathlib import Path

import pytest
from tests.agent.robust_apps.harness import App
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, http_get, spyglass_argv
from tests.support.waiting import free_port, wait_until

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


_HOLDS_AGENT_LOCK = '''\
import gc, sys, time
from spyglass import metrics

store = metrics.get().store
gc.collect()  # queues a gc observation: the SIGTERM flush writes it under store.lock
with store.lock:  # where a SIGTERM lands during any metric write
    print("holding", flush=True)
    time.sleep(60)
'''


def test_sigterm_while_the_agent_holds_a_lock_still_exits(tmp_path: Path) -> None:
    """The flush-on-SIGTERM handler runs on the thread the signal interrupted; if that thread
    was inside one of the agent's locks (a metric write, say), flushing there waited on it
    forever (a multiprocessing pool worker stopped while starting hung its pool's join). The
    process must exit by the signal, as it would without the agent."""
    script = tmp_path / "holder.py"
    script.write_text(_HOLDS_AGENT_LOCK)
    argv = spyglass_argv(sys.executable, str(script), metrics_port=free_port(),
                         traces="false", logs="false")
    with AppProcess(argv, env={"PYTHONUNBUFFERED": "1"}, cwd=tmp_path) as app:
        wait_until(lambda: "holding" in app.stdout(), timeout=20)
        assert app.proc is not None
        os.kill(app.proc.pid, signal.SIGTERM)
        try:
            code = app.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("SIGTERM did not end the process: " + app.describe()) from None
        assert code == -signal.SIGTERM, app.describe()
