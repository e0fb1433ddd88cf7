"""psycopg2: query spans from opentelemetry-instrumentation-psycopg2 (literals scrubbed)."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "psycopg2"
MODULES = ("psycopg2",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.psycopg2", "Psycopg2Instrumentor")
