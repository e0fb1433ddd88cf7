"""redis-py (sync and asyncio): command spans from opentelemetry-instrumentation-redis.

Command arguments (keys and values) are not recorded by default in the contrib package; only the
command name and the sanitized statement are."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "redis"
MODULES = ("redis",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.redis", "RedisInstrumentor")
