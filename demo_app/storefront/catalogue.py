"""Cache-aside reads of the catalogue: look in the cache, on a miss ask orders and fill it."""

from __future__ import annotations

from typing import Any

from demo_app import cache
from demo_app.storefront.orders_client import OrdersClient


async def products(store: cache.Cache, orders: OrdersClient) -> list[dict[str, Any]]:
    """All products, cached for CATALOGUE_TTL seconds."""
    cached = await store.get(cache.key("catalogue"))
    if cached is not None:
        return list(cached)
    return await refresh(store, orders)


async def product(store: cache.Cache, orders: OrdersClient, product_id: int) -> Any | None:
    """One product, cached for PRODUCT_TTL seconds; None when it does not exist."""
    cached = await store.get(cache.key("product", product_id))
    if cached is not None:
        return cached
    found = await orders.product(product_id)
    if found is not None:
        await store.set(cache.key("product", product_id), found, cache.PRODUCT_TTL)
    return found


async def refresh(store: cache.Cache, orders: OrdersClient) -> list[dict[str, Any]]:
    """Read the catalogue from orders and put it in the cache."""
    listing = await orders.products()
    await store.set(cache.key("catalogue"), listing, cache.CATALOGUE_TTL)
    return listing
