"""Products (the catalogue's source of truth) and orders with their payment lifecycle."""

from __future__ import annotations

from django.db import models


class Product(models.Model):
    """A product of the catalogue; the storefront caches these."""

    name = models.CharField(max_length=100)
    category = models.CharField(max_length=50)
    price_cents = models.PositiveIntegerField()

    def as_dict(self) -> dict[str, object]:
        """JSON form served to the storefront."""
        return {
            "id": self.pk,
            "name": self.name,
            "category": self.category,
            "price_cents": self.price_cents,
        }


class Order(models.Model):
    """An order: pending until the worker takes the payment, then paid, then receipt_sent."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        RECEIPT_SENT = "receipt_sent"
        PAYMENT_FAILED = "payment_failed"

    # The storefront retries a checkout once; the key makes the retry return the same order.
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total_cents = models.PositiveIntegerField()
    items = models.JSONField()
    payment_id = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def as_dict(self) -> dict[str, object]:
        """JSON form returned by the API."""
        return {
            "id": self.pk,
            "status": self.status,
            "total_cents": self.total_cents,
            "items": self.items,
            "payment_id": self.payment_id,
            "last_error": self.last_error,
        }
