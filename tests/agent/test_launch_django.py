"""A ``startproject``-style Django project under gunicorn, with ``DJANGO_SETTINGS_MODULE``
set only inside its ``wsgi.py``: it must start, be traced and measured, and a request Django
answers before any view runs (a disallowed Host) must be measured too. That its responses
equal the agent-less ones is in test_launch_transparency.py."""

from __future__ import annotations

from tests.agent import APPS, ITEM_ROUTE, check_logs, check_spans, drive, launch, wait_route_counts
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import http_get
from tests.support.waiting import free_port

N = 20


def test_django_under_gunicorn_settings_only_in_wsgi_py(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    port = free_port()
    launched = launch(
        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "djproj.wsgi"],
        otlp_receiver, loki_receiver, app_port=port, cwd=APPS / "djproj")
    with launched.proc:
        ids = list(range(7000, 7000 + N))
        drive(launched.base, ids)
        status, _, _ = http_get(launched.base + "/items/1", headers={"Host": "evil.example"})
        assert status == 400
        wait_route_counts(launched.metrics_url, {(ITEM_ROUTE, "200"): N, ("unmatched", "400"): 1})
        servers = check_spans(otlp_receiver, ids)
        check_logs(loki_receiver, servers)
        # The disallowed-Host request has its own server span, ended with its status.
        bad = otlp_receiver.wait_for_spans(
            lambda s: s.kind == "SERVER" and s.attributes.get("http.response.status_code") == 400)
        assert [s.name for s in bad] == ["GET"]
