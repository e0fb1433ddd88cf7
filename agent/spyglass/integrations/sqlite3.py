"""sqlite3: query spans from opentelemetry-instrumentation-sqlite3 (literals scrubbed)."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "sqlite3"
MODULES = ("sqlite3",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.sqlite3", "SQLite3Instrumentor")
