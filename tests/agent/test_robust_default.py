"""With nothing configured and no backend running, ``spyglass run`` still just works.

No ``OTEL_*``/``SPYGLASS_*`` variable and no ``[tool.spyglass]``: the exporters aim at the
defaults (localhost:4318 for OTLP, localhost:3100 for Loki), where nothing listens on the
test machine. ``/metrics`` must be served, the app must answer as without the agent, stdout
must be unchanged, each signal may warn at most once, and ``--console`` must print exactly one
compact line per request on stderr.
"""

from __future__ import annotations

import re
import socket

import pytest
from tests.agent.robust_apps.harness import App, env_without_otel
from tests.support.procs import http_get
from tests.support.waiting import wait_until

PATHS = ["/", "/items/7", "/log/z", "/missing", "/boom"]
CONSOLE = re.compile(r"^spyglass \[\d+\] (?P<method>[A-Z_]+) (?P<route>\S+) (?P<status>\d{3}) "
                     r"(?P<ms>\d+\.\d)ms trace=(?P<trace>[0-9a-f]{32})$")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_nothing_configured_console_and_metrics() -> None:
    env = env_without_otel()
    with App("script", agent=False, env=env) as plain:
        expected = {p: http_get(plain.url(p))[:3:2] for p in PATHS}
        plain.proc.stop()
        plain_stdout = plain.proc.stdout()

    with App("script", env=env, console=True) as app:
        for path in PATHS:
            assert http_get(app.url(path))[:3:2] == expected[path], path
        backends_down = not _listening(4318) and not _listening(3100)
        if backends_down:
            # The first failed export is what produces the (single) warning.
            wait_until(lambda: app.metric("spyglass_export_errors_total", signal="traces")
                       and app.metric("spyglass_export_errors_total", signal="logs"),
                       timeout=15, interval=0.3, message="exports to the defaults not tried")
        metrics = app.metrics()
        assert "http_server_request_duration_seconds" in metrics
        app.proc.stop()
        err, out = app.proc.stderr(), app.proc.stdout()

    assert out == plain_stdout  # nothing of ours on stdout
    for signal in ("traces", "logs"):
        warnings = [line for line in err.splitlines() if f"cannot export {signal}" in line]
        assert len(warnings) <= 1, warnings
        if backends_down:
            assert len(warnings) == 1, err
    console = [CONSOLE.match(line) for line in err.splitlines() if line.startswith("spyglass [")]
    assert all(console), [line for line in err.splitlines() if line.startswith("spyglass [")]
    seen = [(m["method"], m["route"], m["status"]) for m in console if m]
    # wait_http's readiness GETs add lines for "/"; otherwise exactly one line per request.
    # (Lines come from the request's own thread as it ends, so their order may interleave.)
    # An unmatched request shows its raw path: the console is for a developer, not a label.
    readiness = len(seen) - len(PATHS)
    assert readiness >= 1, seen
    assert sorted(seen) == sorted([
        ("GET", "/", "200"), ("GET", "/items/{item_id}", "200"), ("GET", "/log/{tag}", "200"),
        ("GET", "/missing", "404"), ("GET", "/boom", "500")] + [("GET", "/", "200")] * readiness)
    others = [line for line in err.splitlines()
              if line.startswith("spyglass") and not line.startswith("spyglass [")
              and "cannot export" not in line]
    assert not others, others


@pytest.mark.parametrize("kind", ["uvicorn"])
def test_console_line_per_request_async(kind: str) -> None:
    with App(kind, env=env_without_otel(), console=True) as app:
        for i in range(3):
            http_get(app.url(f"/items/{i}"))
        app.proc.stop()
        lines = [CONSOLE.match(line) for line in app.proc.stderr().splitlines()
                 if line.startswith("spyglass [")]
    routes = [m["route"] for m in lines if m]
    assert routes.count("/items/{item_id}") == 3, routes
    assert len({m["trace"] for m in lines if m}) == len(lines)
