"""httpx (sync and async clients): client spans from opentelemetry-instrumentation-httpx."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "httpx"
MODULES = ("httpx",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor")
