"""Development launch modes under ``spyglass run``: ``python app.py`` (Flask's app.run and
a plain WSGI callable on the stdlib's wsgiref), ``flask run``, and Django's ``manage.py
runserver`` with its autoreloader on (the reloader parent owns /metrics, its child serves)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.agent import APPS, check_telemetry, drive, launch
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import cmdline
from tests.support.waiting import free_port, wait_until

N = 20


def test_python_flask_app_run(otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver) -> None:
    port = free_port()
    launched = launch([sys.executable, "flask_app.py"], otlp_receiver, loki_receiver,
                      app_port=port, env={"PORT": str(port)})
    with launched.proc:
        ids = list(range(6000, 6000 + N))
        drive(launched.base, ids)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids)


def test_python_plain_wsgi_callable(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    port = free_port()
    launched = launch([sys.executable, "wsgi_app.py"], otlp_receiver, loki_receiver,
                      app_port=port, env={"PORT": str(port)})
    with launched.proc:
        ids = list(range(6100, 6100 + N))
        drive(launched.base, ids)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids, route="unmatched",
                        span_name="GET", also_counted=1)


def test_flask_run(otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver) -> None:
    port = free_port()
    launched = launch(["flask", "--app", "flask_app", "run", "--port", str(port)],
                      otlp_receiver, loki_receiver, app_port=port)
    with launched.proc:
        ids = list(range(6200, 6200 + N))
        drive(launched.base, ids)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def test_django_runserver_with_autoreloader(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    port = free_port()
    launched = launch([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
                      otlp_receiver, loki_receiver, app_port=port, cwd=APPS / "djproj")
    with launched.proc:
        # The autoreloader is on: the parent restarts a child (RUN_MAIN=true) that serves.
        children = wait_until(launched.proc.children, timeout=10)
        server = [p for p in children if _environ(p).get("RUN_MAIN") == "true"]
        assert server, [(p, cmdline(p)) for p in children]
        assert "RUN_MAIN" not in _environ(launched.proc.pid)
        ids = list(range(6300, 6300 + N))
        drive(launched.base, ids)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids)
