"""Shopping carts, kept in the cache (Redis or in-process) under the cart id."""

from __future__ import annotations

from demo_app import cache


async def load(store: cache.Cache, cart_id: str) -> dict[str, int]:
    """Quantities by product id (as strings, the JSON key type); empty for a new cart."""
    return dict(await store.get(cache.key("cart", cart_id)) or {})


async def add(store: cache.Cache, cart_id: str, product_id: int, quantity: int) -> dict[str, int]:
    """Add ``quantity`` of a product and return the cart."""
    items = await load(store, cart_id)
    items[str(product_id)] = items.get(str(product_id), 0) + quantity
    await store.set(cache.key("cart", cart_id), items, cache.CART_TTL)
    return items


async def clear(store: cache.Cache, cart_id: str) -> None:
    """Empty the cart after a checkout."""
    await store.delete(cache.key("cart", cart_id))
