"""The in-flight gauge (``http_server_active_requests``) under a real gunicorn worker.

With the slow-request watchdog on (the default) its thread writes the gauge at every check
(``spyglass.server.set_request_watch``), so requests do not write it on the way in and out;
with the watchdog off each request writes it. Either way a scrape during a slow request
sees it in flight, and one after it sees none (polled with deadlines: the watchdog's value
may be up to one check, 1 s, old).
"""

from __future__ import annotations

import threading
import urllib.request

import pytest
from tests.agent.robust_apps.harness import App, env_without_otel
from tests.support.waiting import wait_until

WATCHDOG_OFF = {"SPYGLASS_SLOW_REQUEST_SECONDS": "0", "SPYGLASS_STUCK_WORKER_SECONDS": "0"}


@pytest.mark.parametrize("settings", [{}, WATCHDOG_OFF], ids=["watchdog", "no-watchdog"])
def test_a_slow_request_is_in_flight_until_it_ends(settings: dict[str, str]) -> None:
    env: dict[str, str | None] = {**env_without_otel(), **settings}
    with App("gunicorn", env=env) as app:
        def active() -> float:
            return app.metric("http_server_active_requests")

        assert active() == 0
        done: list[bytes] = []
        slow = threading.Thread(target=lambda: done.append(
            urllib.request.urlopen(app.url("/sleep/4.0"), timeout=20).read()))
        slow.start()
        try:
            wait_until(lambda: active() == 1, timeout=3.5,
                       message="the slow request never showed as in flight")
        finally:
            slow.join(20)
        assert done == [b"slept"]
        wait_until(lambda: active() == 0, timeout=3,
                   message="the finished request still shows as in flight")
