"""Scrape, parse and query Prometheus expositions; lint them with the real promtool.

Tests assert on what Prometheus would actually see: the bytes served on /metrics, parsed
with prometheus_client's own parsers (text format 0.0.4 and OpenMetrics), and linted with
``promtool check metrics`` from the installed Prometheus.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from .procs import http_get

__all__ = [
    "OPENMETRICS_ACCEPT",
    "TEXT_ACCEPT",
    "PromtoolMissing",
    "parse",
    "promtool_check_metrics",
    "samples",
    "scrape",
    "series",
    "value",
]

OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_ACCEPT = "text/plain; version=0.0.4; charset=utf-8"


class PromtoolMissing(RuntimeError):
    """``promtool`` is not on PATH (Debian: ``apt-get install prometheus``)."""


def scrape(url: str, openmetrics: bool = False, timeout: float = 5) -> tuple[str, str]:
    """GET a metrics endpoint as Prometheus would; return (content-type, body text).

    Raises ``AssertionError`` on a non-200 answer.
    """
    accept = OPENMETRICS_ACCEPT if openmetrics else TEXT_ACCEPT
    status, headers, body = http_get(url, headers={"Accept": accept}, timeout=timeout)
    if status != 200:
        raise AssertionError(f"scrape of {url} answered {status}: {body[:500]!r}")
    return headers.get("content-type", ""), body.decode("utf-8")


def parse(text: str, openmetrics: bool | None = None) -> dict[str, Metric]:
    """Parse an exposition into {family name: Metric}.

    ``openmetrics=None`` picks the OpenMetrics parser when the text ends with ``# EOF``
    (required by OpenMetrics, absent from the text format). Parse errors propagate.
    """
    if openmetrics is None:
        openmetrics = text.rstrip().endswith("# EOF")
    parser = openmetrics_families if openmetrics else text_string_to_metric_families
    families: dict[str, Metric] = {}
    for family in parser(text):
        if family.name in families:
            families[family.name].samples.extend(family.samples)
        else:
            families[family.name] = family
    return families


def samples(families: dict[str, Metric], sample_name: str) -> Iterable[object]:
    """Every sample named ``sample_name`` (e.g. ``foo_bucket``, ``foo_total``) in any family."""
    for family in families.values():
        for sample in family.samples:
            if sample.name == sample_name:
                yield sample


def value(families: dict[str, Metric], sample_name: str, **labels: object) -> float:
    """Sum of samples named ``sample_name`` whose labels include ``labels`` (0.0 if none).

    Label values are compared as strings, so ``le=0.5`` matches ``le="0.5"``.
    """
    wanted = {k: str(v) for k, v in labels.items()}
    total = 0.0
    for family in families.values():
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in wanted.items()
            ):
                total += float(sample.value)
    return total


def series(families: dict[str, Metric], sample_name: str) -> list[dict[str, str]]:
    """The label sets of all samples named ``sample_name``."""
    return [
        dict(sample.labels)
        for family in families.values()
        for sample in family.samples
        if sample.name == sample_name
    ]


def promtool_check_metrics(text: str, timeout: float = 30) -> tuple[bool, str]:
    """Run ``promtool check metrics`` on ``text``; return (passed, combined output).

    Lint the text format: promtool 2.42 cannot read OpenMetrics with exemplars.
    Raises ``PromtoolMissing`` if promtool is not installed.
    """
    exe = shutil.which("promtool")
    if exe is None:
        raise PromtoolMissing(
            "promtool not found on PATH; install it with `apt-get install prometheus`"
        )
    result = subprocess.run(
        [exe, "check", "metrics"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    output = (result.stdout + result.stderr).decode("utf-8", errors="replace")
    return result.returncode == 0, output
