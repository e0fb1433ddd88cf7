"""The worker's tasks: take a payment, send the receipt (a task started by a task), refresh
the catalogue cache on a schedule.

The tasks talk to payments and orders over HTTP with ``requests``; they never touch the
orders database, which belongs to the orders service.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
import requests
from celery import Task

from demo_app import cache, config, faults
from demo_app.worker.app import REFRESH_CATALOGUE, SEND_RECEIPT, TAKE_PAYMENT, app

log = logging.getLogger("worker.tasks")
STORE = faults.FaultStore("worker")
TIMEOUT = (2.0, 5.0)  # (connect, read) seconds
CLOSED_PORT_URL = "http://127.0.0.1:1"  # where payments "is" during the outage fault

session = requests.Session()


def _payments_url() -> str:
    if STORE.get("payments_unreachable") is not None:
        return CLOSED_PORT_URL
    return config.service_url("payments")


def _report_payment(order_id: int, **outcome: str) -> None:
    url = f"{config.service_url('orders')}/orders/{order_id}/payment"
    session.post(url, json=outcome, timeout=TIMEOUT).raise_for_status()


class PaymentTask(Task):
    """Reports a payment that failed for good back to orders, so the order does not hang."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called by Celery once the task has failed and will not be retried."""
        try:
            _report_payment(args[0], error=f"{type(exc).__name__}: {exc}")
        except requests.RequestException:
            log.exception("could not report the failed payment of order %s", args[0])


@app.task(name=TAKE_PAYMENT, base=PaymentTask, bind=True, max_retries=2, default_retry_delay=0.5)
def take_payment(self: Task, order_id: int) -> str:
    """Charge the order's total at payments, record the payment, then queue the receipt."""
    if STORE.fails("task_failure_rate"):
        raise faults.InjectedFault(f"injected failure taking the payment of order {order_id}")
    orders = config.service_url("orders")
    order = session.get(f"{orders}/orders/{order_id}", timeout=TIMEOUT)
    order.raise_for_status()
    try:
        response = session.post(
            f"{_payments_url()}/payments",
            json={"order_id": order_id, "amount_cents": order.json()["total_cents"]},
            timeout=TIMEOUT,
        )
        response.raise_for_status()
    except requests.RequestException as exc:
        log.warning("payment of order %s failed (try %s): %s", order_id, self.request.retries, exc)
        raise self.retry(exc=exc) from exc
    payment_id = response.json()["payment_id"]
    _report_payment(order_id, payment_id=payment_id)
    send_receipt.delay(order_id)
    log.info("order %s paid with %s", order_id, payment_id)
    return str(payment_id)


@app.task(name=SEND_RECEIPT)
def send_receipt(order_id: int) -> None:
    """Send the receipt (a log line) and mark the order as receipted."""
    url = f"{config.service_url('orders')}/orders/{order_id}/receipt"
    session.post(url, timeout=TIMEOUT).raise_for_status()
    log.info("receipt for order %s sent", order_id)


# A refresh can come due while the service it calls is away: when the demo stops, every
# service gets SIGTERM at once and the worker, in its warm shutdown, still runs the refresh it
# had prefetched after the storefront has gone. A refused connection is retried a few times
# (logged at INFO) rather than failing with an ERROR traceback.
@app.task(
    name=REFRESH_CATALOGUE,
    autoretry_for=(requests.ConnectionError,),
    retry_backoff=1,
    max_retries=3,
)
def refresh_catalogue() -> int:
    """Re-read the catalogue from orders and put it in the cache before the TTL runs out.

    With Redis this writes the shared cache directly. The embedded in-process cache lives in
    the storefront process, so there the task asks the storefront to refresh it instead.
    """
    redis_url = config.redis_url()
    if redis_url is None:
        url = f"{config.service_url('storefront')}/_admin/cache/refresh"
        response = session.post(url, timeout=TIMEOUT)
        response.raise_for_status()
        return int(response.json()["products"])
    listing = session.get(f"{config.service_url('orders')}/products", timeout=TIMEOUT)
    listing.raise_for_status()
    products = listing.json()["products"]
    _write_catalogue(redis_url, products)
    return len(products)


def _write_catalogue(redis_url: str, products: list[dict[str, Any]]) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0)
    try:
        client.set(cache.key("catalogue"), json.dumps(products), px=int(cache.CATALOGUE_TTL * 1000))
    finally:
        client.close()
