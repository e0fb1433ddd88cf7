"""End to end: errors on a scraped /metrics endpoint -> burn-rate alert -> Alertmanager -> webhook.

Runs the real Prometheus and Alertmanager binaries with test copies of
collectors/prometheus.yml and collectors/alertmanager.yml (only targets, URLs and timings
changed) and the test-scaled copy of the availability page alert
(alerts/generated/slo_rules_e2e.yaml, windows divided by 60). The service being scraped and
the notification endpoint are loopback stand-ins, described below.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from tests.support._server import LoopbackHTTPServer, read_body
from tests.support.procs import AppProcess
from tests.support.waiting import free_port, wait_until

from . import ALERTMANAGER_BIN, ALERTS, require_tool, running_prometheus

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
ALERT = "AvailabilityBudgetBurnFast"


class StandInService(LoopbackHTTPServer):
    """Stands in for a demo service instrumented by the Spyglass agent: only its /metrics.

    It is not the agent. It exposes http_server_request_duration_seconds (the contract's
    histogram, rendered by prometheus_client) for simulated traffic of ``ok_per_second``
    200 responses, plus ``errors_per_second`` 500 responses while errors are switched on.
    Traffic accrues with wall time and is booked when Prometheus scrapes.
    """

    def __init__(self, ok_per_second: float = 50, errors_per_second: float = 10) -> None:
        super().__init__()
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "http_server_request_duration_seconds", "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            buckets=BUCKETS, registry=self.registry,
        )
        self.ok = self.requests.labels("GET", "/products", "200")
        self.errors = self.requests.labels("POST", "/checkout", "500")
        self.rates = {"ok": ok_per_second, "errors": errors_per_second}
        self.failing = False
        self._carry = {"ok": 0.0, "errors": 0.0}
        self._last = time.monotonic()

    def set_failing(self, failing: bool) -> None:
        with self.lock:
            self._book()
            self.failing = failing

    def _book(self) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        for kind, child in (("ok", self.ok), ("errors", self.errors)):
            if kind == "errors" and not self.failing:
                continue
            self._carry[kind] += elapsed * self.rates[kind]
            whole = int(self._carry[kind])
            self._carry[kind] -= whole
            for _ in range(whole):
                child.observe(0.02)

    def handle_get(self, handler: Any) -> None:
        if handler.path != "/metrics":
            handler.send_plain(404, "not found\n")
            return
        with self.lock:
            self._book()
            payload = generate_latest(self.registry)
        handler.send_bytes(200, payload, CONTENT_TYPE_LATEST)


class NotificationSink(LoopbackHTTPServer):
    """Stands in for the notification endpoints Alertmanager posts to (not a real service).

    ``/alertmanager`` takes the webhook receiver's JSON; ``/slack`` takes what Alertmanager
    would post to a Slack incoming webhook. Every body is recorded with its path.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, dict[str, Any]]] = []

    def handle_post(self, handler: Any) -> None:
        body = json.loads(read_body(handler))
        with self.lock:
            self.received.append((handler.path, body))
        handler.send_plain(200, "ok")

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.received if p == path]


def get_json(url: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(url + query, timeout=5) as resp:
        return json.load(resp)


@pytest.fixture
def service() -> Iterator[StandInService]:
    with StandInService() as svc:
        yield svc


@pytest.fixture
def sink() -> Iterator[NotificationSink]:
    with NotificationSink() as server:
        yield server


@pytest.fixture
def alertmanager(
    alertmanager_config_copy: Any, sink: NotificationSink, tmp_path: Path
) -> Iterator[str]:
    require_tool(ALERTMANAGER_BIN)
    port = free_port()

    def edit(config: dict[str, Any]) -> None:
        # Only where notifications go and how soon; routes, grouping and templates are as shipped.
        glob = config["global"]
        for key in [k for k in glob if k.startswith("smtp_") or k == "slack_api_url_file"]:
            del glob[key]
        glob["slack_api_url"] = f"{sink.endpoint}/slack"
        for route in [config["route"], *config["route"]["routes"]]:
            route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        for receiver in config["receivers"]:
            receiver.pop("email_configs", None)  # no SMTP server here
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = f"{sink.endpoint}/alertmanager"

    config = alertmanager_config_copy(edit)
    storage = tmp_path / "alertmanager-data"
    argv = [ALERTMANAGER_BIN, f"--config.file={config}", f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    with AppProcess(argv) as proc:
        proc.wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=20, status=200)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            print(f"alertmanager:\n{proc.describe()}")  # shown by pytest only on failure


@pytest.fixture
def prometheus(
    prometheus_config_copy: Any, service: StandInService, alertmanager: str, tmp_path: Path
) -> Iterator[str]:
    port = free_port()

    def edit(config: dict[str, Any]) -> None:
        # The storefront job as shipped (its service/environment labels), aimed at the
        # stand-in; 1s scrapes and evaluations; the test-scaled rules instead of the real ones.
        config["global"].update(scrape_interval="1s", scrape_timeout="1s",
                                evaluation_interval="1s")
        config["rule_files"] = [str(ALERTS / "generated" / "slo_rules_e2e.yaml")]
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
        (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "storefront"]
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{service.port}"]
        config["scrape_configs"] = [job]

    config = prometheus_config_copy(edit)
    with running_prometheus(config, tmp_path / "prometheus-data", port) as url:
        yield url


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = get_json(f"{prometheus}/api/v1/query", query=expr)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def notifications(sink: NotificationSink, status: str) -> list[dict[str, Any]]:
    """Webhook alerts for the storefront page alert with the given status."""
    return [
        alert
        for body in sink.bodies("/alertmanager")
        for alert in body["alerts"]
        if alert["labels"].get("alertname") == ALERT
        and alert["labels"].get("service") == "storefront"
        and alert["status"] == status
    ]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_error_burst_pages_and_resolves(
    prometheus: str, service: StandInService, sink: NotificationSink
) -> None:
    # Healthy traffic: scraped with the shipped target labels, ratio recorded as 0, no alert.
    ratio = "service:http_server_requests:error_ratio_rate5s"
    healthy = wait_until(
        lambda: [r for r in query(prometheus, f'{ratio}{{service="storefront"}}')
                 if float(r["value"][1]) == 0],
        timeout=30, interval=0.5, message="error ratio never recorded for the stand-in",
    )
    assert healthy[0]["metric"]["environment"] == "demo"
    assert not query(prometheus, f'ALERTS{{alertname="{ALERT}"}}')

    # 10 errors/s against 50 ok/s (~17%) burns the 0.1% budget far above 14.4x.
    service.set_failing(True)
    started = time.monotonic()
    wait_until(
        lambda: query(prometheus, f'ALERTS{{alertname="{ALERT}",alertstate="pending"}}'),
        timeout=20, interval=0.25, message="alert never went pending",
    )
    assert not notifications(sink, "firing"), "notified before the alert's `for` elapsed"
    (fired,) = wait_until(lambda: notifications(sink, "firing"), timeout=30, interval=0.25,
                          message="webhook never received the firing alert")
    assert time.monotonic() - started >= 2  # the test-scaled `for: 2s`
    assert fired["labels"]["severity"] == "critical"
    assert fired["labels"]["environment"] == "demo"
    runbook = fired["annotations"]["runbook_url"]
    assert runbook.endswith("/alerts/RUNBOOK.md#availabilitybudgetburnfast")

    # The same alert reached the pager's Slack receiver, rendered by the shipped templates.
    slack = wait_until(lambda: sink.bodies("/slack"), timeout=15, interval=0.25,
                       message="pager Slack receiver got nothing")
    attachment = slack[0]["attachments"][0]
    assert attachment["title"].startswith(f"[FIRING:1] {ALERT} - storefront (critical)")
    assert "storefront is burning its availability error budget too fast" in attachment["text"]
    assert "Runbook: https://" in attachment["text"]
    assert "Grafana: http://localhost:3000/d/spyglass-overview?var-service=storefront" in (
        attachment["text"]
    )
    assert attachment["title_link"].startswith("http://localhost:3000/d/spyglass-overview")

    # Errors stop: once both short windows (5s, 30s) are clean the alert resolves.
    service.set_failing(False)
    (resolved,) = wait_until(lambda: notifications(sink, "resolved"), timeout=60, interval=0.5,
                             message="webhook never received the resolved notification")
    assert resolved["endsAt"] >= resolved["startsAt"]
    assert not query(prometheus, f'ALERTS{{alertname="{ALERT}"}}')
