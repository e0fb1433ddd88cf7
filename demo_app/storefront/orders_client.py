"""The storefront's HTTP client for the orders service: timeouts and one retry with backoff.

Connect errors and 5xx answers are retried once, since they are usually a restarting or
briefly overloaded instance. Timeouts are not retried: the order may already be in progress,
and a retry would double the wait of a shopper who is already waiting too long. Checkouts are
safe to retry because orders deduplicates them by idempotency key.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from demo_app import config

RETRY_BACKOFF = 0.2  # seconds before the single retry


class OrdersError(Exception):
    """Orders failed or could not be reached, even after the retry."""


class OrdersClient:
    """Thin async client; one ``httpx.AsyncClient`` (and its connection pool) per process."""

    def __init__(self, base_url: str | None = None, timeout: float | None = None) -> None:
        timeout = timeout or float(os.environ.get("DEMO_ORDERS_TIMEOUT", "3"))
        self._client = httpx.AsyncClient(
            base_url=base_url or config.service_url("orders"),
            timeout=httpx.Timeout(timeout, connect=1.0),
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; retry once on a connect error or 5xx; raise OrdersError after."""
        for attempt in (1, 2):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                if attempt == 2:
                    raise OrdersError(f"orders unreachable: {exc}") from exc
            else:
                if response.status_code < 500:
                    return response
                if attempt == 2:
                    raise OrdersError(f"orders answered {response.status_code}")
            await asyncio.sleep(RETRY_BACKOFF)
        raise AssertionError("unreachable")

    async def products(self) -> list[dict[str, Any]]:
        """The whole catalogue."""
        response = await self.request("GET", "/products")
        return list(response.json()["products"])

    async def product(self, product_id: int) -> dict[str, Any] | None:
        """One product, or None when orders does not know it."""
        response = await self.request("GET", f"/products/{product_id}")
        return None if response.status_code == 404 else dict(response.json())

    async def create_order(self, idempotency_key: str, items: list[dict[str, int]]) -> Any:
        """Create an order; the same key returns the same order."""
        response = await self.request(
            "POST", "/orders", json={"idempotency_key": idempotency_key, "items": items}
        )
        if response.status_code >= 400:
            raise OrdersError(f"orders rejected the order: {response.text}")
        return response.json()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
