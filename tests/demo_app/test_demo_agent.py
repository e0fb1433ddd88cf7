"""Under ``spyglass run`` (no DEMO_NO_AGENT), every service serves its own /metrics.

A smoke test of the wiring only; what the agent puts in traces and logs is tested with the
agent and by the demo's tracing tests.
"""

from __future__ import annotations

import httpx
import pytest
from tests.demo_app.harness import start_demo, stop_demo
from tests.support.waiting import closed_port, wait_until

pytestmark = pytest.mark.slow

SERVICES = ("storefront", "orders", "payments", "worker")


def test_every_service_has_metrics_under_the_agent(embedded_env: dict[str, str | None]) -> None:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    env = {
        **embedded_env,
        "DEMO_NO_AGENT": None,
        "OTEL_EXPORTER_OTLP_ENDPOINT": nowhere,
        "SPYGLASS_LOKI_URL": nowhere,
    }
    demo = start_demo(env, "--no-load")
    try:
        assert "/metrics" in demo.process.stdout()
        httpx.get(demo.url("storefront") + "/products", timeout=10).raise_for_status()
        for service in SERVICES:
            url = f"http://127.0.0.1:{env[f'DEMO_{service.upper()}_METRICS_PORT']}/metrics"
            assert url in demo.process.stdout()
            text = wait_until(lambda u=url: httpx.get(u, timeout=5).text, timeout=15)
            assert f'service_name="{service}"' in text, text[:2000]
        storefront = f"http://127.0.0.1:{env['DEMO_STOREFRONT_METRICS_PORT']}/metrics"
        wait_until(
            lambda: 'http_route="/products"' in httpx.get(storefront, timeout=5).text,
            timeout=10,
            message="storefront request not counted",
        )
    finally:
        assert stop_demo(demo) == 0, demo.process.describe()
