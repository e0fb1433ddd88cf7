"""urllib3: client spans from opentelemetry-instrumentation-urllib3.

requests uses urllib3 underneath; the contrib instrumentations suppress the inner span, so one
request is one client span."""

from __future__ import annotations

from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "urllib3"
MODULES = ("urllib3",)


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor")
