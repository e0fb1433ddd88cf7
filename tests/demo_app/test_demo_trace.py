"""One checkout is one trace: storefront -> orders -> broker -> worker -> payments -> receipt.

Every service runs under ``spyglass run`` and exports to the loopback OTLP receiver (a
stand-in for Jaeger's OTLP/HTTP port, decoding with ``opentelemetry-proto``) and the Loki
push API receiver. The trace must hold together across processes and the broker: one trace
id, every parent present, one root (the storefront's server span), and the receipt task
reaching that root through its parents. It runs once on the real PostgreSQL, Redis and
RabbitMQ, and once in the embedded mode (SQLite, in-process cache, SQLite broker), which must
still go through Celery's publish and consume path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.demo_app.harness import (
    demo_env,
    real_backends,
    real_servers_available,
    start_demo,
    stop_demo,
)
from tests.support.loki import LogEntry, LokiReceiver
from tests.support.otlp import OTLPReceiver, Span
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

TAKE_PAYMENT = "demo_app.take_payment"
SEND_RECEIPT = "demo_app.send_receipt"


def _under_agent(
    env: dict[str, str | None], otlp: OTLPReceiver, loki: LokiReceiver
) -> dict[str, str | None]:
    return {
        **env,
        "DEMO_NO_AGENT": None,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "SPYGLASS_LOKI_URL": loki.endpoint,
        # a busy CI machine must not turn the checkout into a 504: this test is about the trace
        "DEMO_ORDERS_TIMEOUT": "10",
    }


def _checkout(base_url: str) -> dict[str, object]:
    """Fill a cart and check it out, as a shopper would; returns the created order."""
    with httpx.Client(base_url=base_url, timeout=15) as shop:
        product = shop.get("/products").raise_for_status().json()["products"][2]
        shop.post(
            "/cart/items", json={"product_id": product["id"], "quantity": 2}
        ).raise_for_status()
        response = shop.post("/checkout")
        assert response.status_code == 201, response.text
        return dict(response.json())


def _service(span: Span) -> str:
    return str(span.resource.get("service.name"))


def _task_span(spans: list[Span], kind: str, task: str) -> Span | None:
    return next(
        (
            s
            for s in spans
            if s.kind == kind
            and (s.attributes.get("celery.task_name") == task or s.name.endswith(f"/{task}"))
        ),
        None,
    )


def _db_system(span: Span) -> str | None:
    """The database of a client span (``db.system.name``, or the older ``db.system``)."""
    value = span.attributes.get("db.system.name", span.attributes.get("db.system"))
    return None if value is None else str(value)


def _describe(spans: list[Span]) -> str:
    return "\n".join(
        f"{_service(s):10} {s.kind:8} {s.name:45} {s.span_id} <- {s.parent_span_id or 'ROOT'}"
        for s in sorted(spans, key=lambda s: s.start_ns)
    )


def _checkout_trace(otlp: OTLPReceiver, check: Callable[[list[Span]], None]) -> list[Span]:
    """The spans of the checkout's trace, once ``check`` passes on them.

    Each process exports on its own schedule, so the trace fills in over a few seconds: poll
    until ``check`` stops raising, then return; past the deadline, raise its last complaint.
    """
    (checkout,) = otlp.wait_for_spans(
        lambda s: s.kind == "SERVER" and s.name == "POST /checkout", timeout=20
    )

    def spans() -> list[Span]:
        return [s for s in otlp.spans() if s.trace_id == checkout.trace_id]

    def passes() -> list[Span] | None:
        current = spans()
        try:
            check(current)
        except AssertionError:
            return None
        return current

    with contextlib.suppress(AssertionError):
        return list(wait_until(passes, timeout=45, interval=0.2))
    check(spans())  # raises with the picture of what arrived
    return spans()


def _assert_one_connected_trace(spans: list[Span], db_system: str, queue: str) -> None:
    picture = _describe(spans)
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), f"duplicate span ids:\n{picture}"
    roots = [s for s in spans if s.is_root]
    assert len(roots) == 1, f"expected one root:\n{picture}"
    (root,) = roots
    assert (_service(root), root.kind, root.name) == ("storefront", "SERVER", "POST /checkout")
    orphans = [s for s in spans if not s.is_root and s.parent_span_id not in by_id]
    assert not orphans, f"orphans {[s.name for s in orphans]}:\n{picture}"

    servers = {_service(s) for s in spans if s.kind == "SERVER"}
    assert {"storefront", "orders", "payments"} <= servers, picture
    assert any(_service(s) == "worker" for s in spans), picture
    for kind, task in (
        ("PRODUCER", TAKE_PAYMENT),
        ("CONSUMER", TAKE_PAYMENT),
        ("PRODUCER", SEND_RECEIPT),
        ("CONSUMER", SEND_RECEIPT),
    ):
        assert _task_span(spans, kind, task) is not None, f"no {kind} span of {task}:\n{picture}"
    # the payment is published by orders and consumed by the worker; the receipt task is
    # published by the worker from inside take_payment (a task started by a task)
    publish = _task_span(spans, "PRODUCER", TAKE_PAYMENT)
    consume = _task_span(spans, "CONSUMER", TAKE_PAYMENT)
    assert publish is not None and _service(publish) == "orders", picture
    assert consume is not None and _service(consume) == "worker", picture
    assert consume.parent_span_id == publish.span_id, picture
    send = _task_span(spans, "PRODUCER", SEND_RECEIPT)
    assert send is not None and by_id[send.parent_span_id] is consume, picture
    # broker hops: every publish and consume names the demo's queue
    messaging = [s for s in spans if s.kind in ("PRODUCER", "CONSUMER")]
    assert {s.attributes.get("messaging.destination") for s in messaging} == {queue}, picture
    assert any(_db_system(s) == db_system and s.kind == "CLIENT" for s in spans), picture

    receipt = _task_span(spans, "CONSUMER", SEND_RECEIPT)
    assert receipt is not None
    chain, span = [], receipt
    while not span.is_root:
        chain.append(f"{_service(span)}:{span.name}")
        span = by_id[span.parent_span_id]
    assert span is root, f"receipt chain {chain} ends at {span.name}:\n{picture}"
    hops = [hop.split(":", 1)[0] for hop in reversed(chain)]
    assert hops[:1] == ["storefront"] and "orders" in hops and "worker" in hops, chain


def _assert_logs_carry_the_trace(loki: LokiReceiver, trace_id: str) -> None:
    """Orders and the worker (at least) pushed log lines of this trace, labelled and linked."""

    def traced() -> list[LogEntry]:
        return [e for e in loki.entries() if e.metadata.get("trace_id") == trace_id]

    def services() -> set[str]:
        found = {e.labels.get("service_name", "") for e in traced()}
        return found if {"orders", "worker"} <= found else set()

    wait_until(services, timeout=15, message=f"log lines of trace {trace_id}")
    assert all(f"trace_id={trace_id}" in e.line for e in traced())


def test_checkout_is_one_trace_on_the_real_servers(
    tmp_path: Path, otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    if not real_servers_available():
        pytest.skip("PostgreSQL, Redis or RabbitMQ is not listening on loopback")
    with real_backends(demo_env(tmp_path / "state")) as env:

        def check(spans: list[Span]) -> None:
            _assert_one_connected_trace(spans, "postgresql", f"{env['DEMO_NAMESPACE']}.tasks")
            cache = [s for s in spans if _db_system(s) == "redis" and _service(s) == "storefront"]
            assert cache, f"no storefront redis span:\n{_describe(spans)}"

        demo = start_demo(_under_agent(env, otlp_receiver, loki_receiver), "--no-load")
        try:
            _checkout(demo.url("storefront"))
            spans = _checkout_trace(otlp_receiver, check)
            _assert_logs_carry_the_trace(loki_receiver, spans[0].trace_id)
        finally:
            assert stop_demo(demo) == 0, demo.process.describe()


def test_checkout_is_one_trace_in_the_embedded_mode(
    embedded_env: dict[str, str | None], otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    demo = start_demo(_under_agent(embedded_env, otlp_receiver, loki_receiver), "--no-load")
    try:
        _checkout(demo.url("storefront"))
        queue = f"{embedded_env['DEMO_NAMESPACE']}.tasks"
        spans = _checkout_trace(
            otlp_receiver, lambda s: _assert_one_connected_trace(s, "sqlite", queue)
        )
        _assert_logs_carry_the_trace(loki_receiver, spans[0].trace_id)
    finally:
        assert stop_demo(demo) == 0, demo.process.describe()
