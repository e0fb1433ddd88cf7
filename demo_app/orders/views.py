"""JSON API of the orders service: catalogue reads, order creation and payment callbacks."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from demo_app import faults
from demo_app.orders.middleware import STORE
from demo_app.orders.models import Order, Product
from demo_app.worker.app import TAKE_PAYMENT
from demo_app.worker.app import app as celery_app

log = logging.getLogger("orders.views")


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


@require_GET
def healthz(request: HttpRequest) -> HttpResponseBase:
    """Liveness for the launcher and compose."""
    return JsonResponse({"status": "ok"})


@require_http_methods(["GET", "POST"])
def admin_faults(request: HttpRequest) -> HttpResponseBase:
    """GET lists the switched-on faults; POST {"name", "enabled", "value"?} flips one."""
    if request.method == "POST":
        try:
            STORE.set(*faults.parse_admin_request(_body(request)))
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(STORE.as_json())


@require_GET
def product_list(request: HttpRequest) -> HttpResponseBase:
    """The whole catalogue (the storefront caches it)."""
    return JsonResponse({"products": [p.as_dict() for p in Product.objects.order_by("id")]})


@require_GET
def product_detail(request: HttpRequest, product_id: int) -> HttpResponseBase:
    """One product, 404 when unknown."""
    return JsonResponse(get_object_or_404(Product, pk=product_id).as_dict())


@require_POST
def create_order(request: HttpRequest) -> HttpResponseBase:
    """Create an order from ``{"idempotency_key", "items": [{"product_id", "quantity"}]}``.

    The payment task is published only once the order row is committed, so the worker never
    looks for an order that does not exist yet.
    """
    try:
        body = _body(request)
        key = str(body["idempotency_key"])
        wanted = {int(i["product_id"]): int(i["quantity"]) for i in body["items"]}
    except (KeyError, TypeError, ValueError) as exc:
        return JsonResponse({"error": f"bad order: {exc}"}, status=400)
    existing = Order.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return JsonResponse(existing.as_dict(), status=200)
    products = Product.objects.in_bulk(list(wanted))
    if not wanted or len(products) != len(wanted):
        return JsonResponse({"error": "unknown or no products"}, status=400)
    items = [
        {"product_id": pid, "quantity": qty, "price_cents": products[pid].price_cents}
        for pid, qty in wanted.items()
    ]
    try:
        with transaction.atomic():
            order = Order.objects.create(
                idempotency_key=key,
                items=items,
                total_cents=sum(i["price_cents"] * i["quantity"] for i in items),
            )
            transaction.on_commit(lambda: celery_app.send_task(TAKE_PAYMENT, args=[order.pk]))
    except IntegrityError:  # the same key raced in from a retry
        return JsonResponse(Order.objects.get(idempotency_key=key).as_dict(), status=200)
    log.info("order %s created, total %s cents", order.pk, order.total_cents)
    return JsonResponse(order.as_dict(), status=201)


@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponseBase:
    """One order with its status."""
    return JsonResponse(get_object_or_404(Order, pk=order_id).as_dict())


@require_POST
def record_payment(request: HttpRequest, order_id: int) -> HttpResponseBase:
    """The worker reports ``{"payment_id"}`` on success or ``{"error"}`` on final failure."""
    body = _body(request)
    order = get_object_or_404(Order, pk=order_id)
    if body.get("payment_id"):
        order.status, order.payment_id = Order.Status.PAID, str(body["payment_id"])
    else:
        order.status, order.last_error = Order.Status.PAYMENT_FAILED, str(body.get("error", ""))
        log.error("payment for order %s failed: %s", order_id, order.last_error)
    order.save(update_fields=["status", "payment_id", "last_error", "updated_at"])
    return JsonResponse(order.as_dict())


@require_POST
def record_receipt(request: HttpRequest, order_id: int) -> HttpResponseBase:
    """The receipt task reports that the receipt went out."""
    order = get_object_or_404(Order, pk=order_id)
    order.status = Order.Status.RECEIPT_SENT
    order.save(update_fields=["status", "updated_at"])
    return JsonResponse(order.as_dict())
