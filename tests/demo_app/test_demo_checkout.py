"""A checkout on the real servers goes all the way: order row, payment, receipt.

The order is read from PostgreSQL directly (the demo's own schema), the catalogue from Redis,
and the task queue is the demo's own queue on RabbitMQ.
"""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest
import redis
from tests.demo_app.harness import PG_URL, REDIS_URL, Demo
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _order_row(demo: Demo, order_id: int) -> tuple[str, str, int] | None:
    schema = str(demo.env["DEMO_DB_SCHEMA"])
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute(
            f'SELECT status, payment_id, total_cents FROM "{schema}".orders_order WHERE id = %s',
            [order_id],
        ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), int(row[2]))


def test_checkout_creates_the_order_and_the_worker_pays_it(real_shop: Demo) -> None:
    with httpx.Client(base_url=real_shop.url("storefront"), timeout=10) as shop:
        listing = shop.get("/products")
        assert listing.status_code == 200
        product = listing.json()["products"][4]
        added = shop.post("/cart/items", json={"product_id": product["id"], "quantity": 3})
        assert added.status_code == 200
        # the cookie set by the first cart request identifies the cart from now on
        assert shop.get("/cart").json()["items"] == {str(product["id"]): 3}
        response = shop.post("/checkout")
        assert response.status_code == 201, response.text
        assert shop.get("/cart").json()["items"] == {}
    order = response.json()
    assert order["status"] == "pending"
    assert order["total_cents"] == 3 * product["price_cents"]

    _, payment_id, total = wait_until(
        lambda: (row := _order_row(real_shop, order["id"])) and row[0] == "receipt_sent" and row,
        timeout=20,
        message="the worker never paid the order and sent the receipt",
    )
    assert payment_id.startswith("pay_") and total == order["total_cents"]
    # The task logs its line just after orders records the receipt: poll, don't read once.
    receipt = f"receipt for order {order['id']} sent"

    def logged() -> str | None:
        text = real_shop.log("worker")
        return text if receipt in text else None

    worker_log = wait_until(logged, timeout=10, message="the worker never logged the receipt")
    assert f"order {order['id']} paid with {payment_id}" in worker_log
    assert receipt in worker_log
    assert f"order {order['id']} charged" in real_shop.log("payments")


def test_catalogue_is_cached_in_redis_with_a_ttl(real_shop: Demo) -> None:
    httpx.get(real_shop.url("storefront") + "/products", timeout=10).raise_for_status()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = f"{real_shop.env['DEMO_NAMESPACE']}:catalogue"
        cached = client.get(key)
        assert cached is not None and len(json.loads(cached)) == 48
        assert 0 < client.pttl(key) <= 30_000
    finally:
        client.close()


def test_checkout_retry_is_idempotent(real_shop: Demo) -> None:
    body = {"idempotency_key": "retry-test", "items": [{"product_id": 1, "quantity": 1}]}
    first = httpx.post(real_shop.url("orders") + "/orders", json=body, timeout=10)
    again = httpx.post(real_shop.url("orders") + "/orders", json=body, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
