"""requests: client spans from opentelemetry-instrumentation-requests (sound as is).

Its spans feed http_client_request_duration_seconds through the tracer's
DependencyMetricsProcessor, and their URLs pass the ScrubProcessor."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "requests"
MODULES = ("requests",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.requests", "RequestsInstrumentor")
