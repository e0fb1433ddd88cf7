"""Ids from a private random source: an app's seeded ``random`` sequence is unchanged.

``services/random_app.py`` (Flask's own server, ``python app.py`` launch mode) seeds the global
``random`` module at import and draws per request. It runs once without and once under
``spyglass run``; the printed numbers must be identical, and the agent run must really have
minted span ids meanwhile (its server spans reach the OTLP receiver).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, http_get, spyglass_argv
from tests.support.waiting import free_port

SERVICES = Path(__file__).resolve().parent / "services"
REQUESTS = 3


def _draws(argv_for_port, env: dict[str, str | None],  # type: ignore[no-untyped-def]
           otlp: OTLPReceiver | None = None) -> list[str]:
    port = free_port()
    with AppProcess(argv_for_port(port), env=env, cwd=SERVICES) as app:
        app.wait_http(f"http://127.0.0.1:{port}/missing", timeout=30)
        bodies = [http_get(f"http://127.0.0.1:{port}/draw")[2] for _ in range(REQUESTS)]
        assert len(set(bodies)) == REQUESTS, bodies
        if otlp is not None:  # ids were minted while the app drew its numbers
            spans = otlp.wait_for_spans(lambda s: s.kind == "SERVER" and s.name == "GET /draw",
                                        count=REQUESTS)
            assert len({s.span_id for s in spans}) == REQUESTS
        lines = [ln for ln in app.stdout().splitlines() if ln.startswith(("import", "request"))]
    assert len(lines) == 1 + REQUESTS, lines
    return lines


def test_seeded_global_random_sequence_is_the_same_under_the_agent() -> None:
    plain = _draws(lambda port: [sys.executable, "random_app.py", str(port)],
                   {"PYTHONUNBUFFERED": "1"})
    with OTLPReceiver() as otlp:
        env = {"PYTHONUNBUFFERED": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
               "SPYGLASS_LOGS": "false", "OTEL_TRACES_SAMPLER": None,
               "OTEL_TRACES_SAMPLER_ARG": None}
        agent = _draws(lambda port: spyglass_argv(sys.executable, "random_app.py", str(port),
                                                  metrics_port=free_port()), env, otlp)
    assert agent == plain
