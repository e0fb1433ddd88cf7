"""The catalogue and cart cache: Redis when REDIS_URL is set, an in-process TTL cache otherwise.

Both backends store JSON values with a TTL, so cache-aside reads see hits until entries expire
and then misses. Keys carry the demo namespace, so demos sharing one Redis do not collide.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from demo_app import config

CATALOGUE_TTL = 30.0  # seconds; the worker's periodic refresh runs more often than this
PRODUCT_TTL = 10.0
CART_TTL = 3600.0


def key(*parts: object) -> str:
    """A namespaced cache key, e.g. ``demo:product:7``."""
    return ":".join([config.namespace(), *map(str, parts)])


class Cache(Protocol):
    """What the storefront needs from a cache."""

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """In-process TTL cache for the embedded mode: a dict of (expiry, JSON text)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return json.loads(entry[1])

    async def set(self, key: str, value: Any, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, json.dumps(value))

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Redis through ``redis.asyncio``: GET/SET with EX, values as JSON."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=2.0)

    async def get(self, key: str) -> Any | None:
        raw = await self._redis.get(key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self._redis.set(key, json.dumps(value), px=int(ttl * 1000))

    async def delete(self, key: str) -> None:
        await self._redis.delete(key)

    async def close(self) -> None:
        await self._redis.aclose()


def from_env() -> Cache:
    """Redis when REDIS_URL is set, else the in-process cache."""
    url = config.redis_url()
    return RedisCache(url) if url else MemoryCache()
