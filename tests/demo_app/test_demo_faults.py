"""Every fault switches on and off at runtime and has the effect it promises.

Runs against one shop on the real PostgreSQL, Redis and RabbitMQ, with faults flipped by
``python -m demo_app fault`` as a user would. Each test switches its fault off again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from tests.demo_app.harness import Demo
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@contextmanager
def fault(demo: Demo, service: str, name: str, *options: str) -> Iterator[None]:
    """A fault that is on inside the block and off afterwards, whatever happens."""
    demo.fault(service, name, "on", *options)
    try:
        yield
    finally:
        demo.fault(service, name, "off")


def timed(method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    """Send one request; return the response and the seconds it took."""
    started = time.perf_counter()
    response = httpx.request(method, url, timeout=kwargs.pop("timeout", 10.0), **kwargs)
    return response, time.perf_counter() - started


def fill_cart(demo: Demo) -> str:
    """Put two of one product in a fresh cart; returns the cart id."""
    added = httpx.post(
        demo.url("storefront") + "/cart/items", json={"product_id": 3, "quantity": 2}, timeout=10
    )
    assert added.status_code == 200, added.text
    return str(added.json()["cart_id"])


def checkout(demo: Demo, cart_id: str | None = None) -> httpx.Response:
    """Check out a cart (by default a freshly filled one)."""
    headers = {"X-Cart-Id": cart_id or fill_cart(demo)}
    return httpx.post(demo.url("storefront") + "/checkout", headers=headers, timeout=10)


def order_status(demo: Demo, order_id: int) -> dict[str, Any]:
    """The order as the orders service reports it."""
    return dict(httpx.get(f"{demo.url('orders')}/orders/{order_id}", timeout=5).json())


def settled(demo: Demo, order_id: int) -> dict[str, Any]:
    """Wait until the worker is done with an order (receipt sent or payment failed)."""
    final = ("receipt_sent", "payment_failed")
    return wait_until(
        lambda: (o := order_status(demo, order_id))["status"] in final and o,
        timeout=20,
        message=f"order {order_id} never settled",
    )


# One failing request per HTTP service: (service, method, path, body, healthy status).
ERROR_TARGETS = [
    ("storefront", "GET", "/products", None, 200),
    ("orders", "GET", "/products", None, 200),
    ("payments", "POST", "/payments", {"order_id": 1, "amount_cents": 100}, 201),
]


@pytest.mark.parametrize(("service", "method", "path", "body", "healthy"), ERROR_TARGETS)
def test_error_rate_gives_500s_from_a_logged_exception(
    real_shop: Demo, service: str, method: str, path: str, body: Any, healthy: int
) -> None:
    url = real_shop.url(service) + path
    with fault(real_shop, service, "error_rate", "--value", "1"):
        statuses = {timed(method, url, json=body)[0].status_code for _ in range(3)}
        assert statuses == {500}
        wait_until(lambda: "InjectedFault" in real_shop.log(service), timeout=5)
        assert "Traceback" in real_shop.log(service)
    assert timed(method, url, json=body)[0].status_code == healthy


def test_error_rate_is_a_fraction(real_shop: Demo) -> None:
    url = real_shop.url("storefront") + "/products"
    with fault(real_shop, "storefront", "error_rate", "--value", "0.5"):
        statuses = [timed("GET", url)[0].status_code for _ in range(20)]
    assert set(statuses) == {200, 500}
    assert 3 <= statuses.count(500) <= 17  # binomial(20, 0.5): P(outside) < 5e-4


def test_latency_on_one_route(real_shop: Demo) -> None:
    base = real_shop.url("storefront")
    route = "/products/{product_id}"
    with fault(real_shop, "storefront", "latency", "--value", "0.6", "--route", route):
        slow, slow_s = timed("GET", f"{base}/products/2")
        other, other_s = timed("GET", f"{base}/products")
    assert slow.status_code == other.status_code == 200
    assert slow_s >= 0.6
    assert other_s < 0.5
    assert timed("GET", f"{base}/products/2")[1] < 0.5


def test_latency_on_every_route_of_payments(real_shop: Demo) -> None:
    url = real_shop.url("payments") + "/payments"
    body = {"order_id": 1, "amount_cents": 100}
    with fault(real_shop, "payments", "latency", "--value", "0.5"):
        response, seconds = timed("POST", url, json=body)
        assert response.status_code == 201 and seconds >= 0.5
    # the service's own jitter is capped at 2 s but its median is ~40 ms
    assert min(timed("POST", url, json=body)[1] for _ in range(3)) < 0.4


def test_slow_sql(real_shop: Demo) -> None:
    url = real_shop.url("orders") + "/products"
    with fault(real_shop, "orders", "slow_sql", "--value", "0.8"):
        response, seconds = timed("GET", url)
        assert response.status_code == 200 and seconds >= 0.8
    assert timed("GET", url)[1] < 0.5


def test_cpu_heavy_recommendations(real_shop: Demo) -> None:
    url = real_shop.url("storefront") + "/recommendations?product_id=5"
    timed("GET", url)  # the catalogue is now cached: what remains is the computation
    normal, normal_s = timed("GET", url)
    with fault(real_shop, "storefront", "cpu_heavy", "--value", "10"):
        heavy, heavy_s = timed("GET", url)
    assert normal.json()["baskets_scanned"] * 10 == heavy.json()["baskets_scanned"]
    assert len(heavy.json()["recommendations"]) == 5
    assert heavy_s > normal_s * 3
    assert timed("GET", url)[0].json()["baskets_scanned"] == normal.json()["baskets_scanned"]


def test_hang_lasts_until_switched_off(real_shop: Demo) -> None:
    url = real_shop.url("payments") + "/payments"
    result: list[tuple[httpx.Response, float]] = []
    real_shop.fault("payments", "hang", "on")
    try:
        thread = threading.Thread(
            target=lambda: result.append(
                timed("POST", url, json={"order_id": 1, "amount_cents": 1}, timeout=60)
            )
        )
        thread.start()
        thread.join(1.5)
        assert thread.is_alive(), "the request should still hang"
    finally:
        real_shop.fault("payments", "hang", "off")
    thread.join(5)
    assert not thread.is_alive()
    response, seconds = result[0]
    assert response.status_code == 201 and seconds >= 1.5


def test_orders_hang_times_out_the_checkout(real_shop: Demo) -> None:
    # DEMO_ORDERS_TIMEOUT is 1.5 s in the tests: the storefront gives up and answers 504.
    cart_id = fill_cart(real_shop)
    with fault(real_shop, "orders", "hang", "--value", "30"):
        started = time.perf_counter()
        response = checkout(real_shop, cart_id)
        seconds = time.perf_counter() - started
        assert response.status_code == 504, response.text
        assert 1.5 <= seconds < 5
        wait_until(lambda: "timed out waiting for orders" in real_shop.log("storefront"))
    assert checkout(real_shop).status_code == 201


def test_payments_unreachable_fails_the_payment(real_shop: Demo) -> None:
    with fault(real_shop, "worker", "payments_unreachable"):
        response = checkout(real_shop)
        assert response.status_code == 201
        failed = settled(real_shop, response.json()["id"])
    assert failed["status"] == "payment_failed"
    assert "ConnectionError" in failed["last_error"]
    assert "payment of order" in real_shop.log("worker")
    healthy = checkout(real_shop)
    assert settled(real_shop, healthy.json()["id"])["status"] == "receipt_sent"


def test_task_failure_rate(real_shop: Demo) -> None:
    with fault(real_shop, "worker", "task_failure_rate", "--value", "1"):
        failed = settled(real_shop, checkout(real_shop).json()["id"])
    assert failed["status"] == "payment_failed"
    assert failed["last_error"].startswith("InjectedFault")
    assert settled(real_shop, checkout(real_shop).json()["id"])["status"] == "receipt_sent"


def test_admin_endpoint_lists_and_rejects(real_shop: Demo) -> None:
    admin = real_shop.url("orders") + "/_admin/faults"
    with fault(real_shop, "orders", "latency", "--value", "0.05"):
        assert httpx.get(admin).json() == {"latency": {"value": 0.05, "route": None}}
    assert httpx.get(admin).json() == {}
    rejected = real_shop.cli("fault", "storefront", "slow_sql", "on")
    assert rejected.returncode == 2 and "storefront has no fault 'slow_sql'" in rejected.stdout
    bad = httpx.post(admin, json={"enabled": True})
    assert bad.status_code == 400
