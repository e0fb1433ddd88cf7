"""SQLAlchemy engines: statement spans from opentelemetry-instrumentation-sqlalchemy.

Statements pass the ScrubProcessor, which replaces literal values with ?."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "sqlalchemy"
MODULES = ("sqlalchemy",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.sqlalchemy", "SQLAlchemyInstrumentor")
