"""psycopg 3: query spans from opentelemetry-instrumentation-psycopg (literals scrubbed)."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "psycopg"
MODULES = ("psycopg",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor")
