"""uvicorn launch modes under ``spyglass run``: ``--workers 1`` and ``--workers 2`` with
FastAPI, and a plain ASGI callable (no framework) that still gets one server span and RED
metrics per request, under the ``unmatched`` route."""

from __future__ import annotations

import sys

import pytest
from tests.agent import check_telemetry, drive, launch
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.waiting import free_port, wait_until

N = 20


def _uvicorn(port: int, app: str, workers: int) -> list[str]:
    # One worker as `python -m uvicorn`, which `spyglass run` runs in its own process
    # (spyglass.launch); two from PATH, exec'd (a pyenv shim) or in-process (a console script).
    program = [sys.executable, "-m", "uvicorn"] if workers == 1 else ["uvicorn"]
    return [*program, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--no-access-log", app]


@pytest.mark.parametrize("workers", [1, 2])
def test_uvicorn_workers_fastapi(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver, workers: int
) -> None:
    port = free_port()
    launched = launch(_uvicorn(port, "fastapi_app:app", workers), otlp_receiver,
                      loki_receiver, app_port=port)
    with launched.proc:
        if workers > 1:
            # The supervisor (the metrics owner) plus its worker processes.
            wait_until(lambda: len(launched.proc.children()) >= workers, timeout=20)
        ids = list(range(4000, 4000 + N))
        drive(launched.base, ids, concurrency=4)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids)


def test_uvicorn_plain_asgi_callable(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    port = free_port()
    launched = launch(_uvicorn(port, "asgi_app:app", 1), otlp_receiver, loki_receiver,
                      app_port=port)
    with launched.proc:
        ids = list(range(5000, 5000 + N))
        drive(launched.base, ids, concurrency=4)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids, route="unmatched",
                        span_name="GET", also_counted=1)
