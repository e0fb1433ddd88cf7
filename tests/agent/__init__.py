"""Agent tests: real apps under ``spyglass run``, checked through the telemetry they emit.

This module holds the helpers of the launch-mode tests (``test_launch_*.py``; fixtures are
in conftest.py). Each launch test
starts a real server from ``apps/`` under the agent, sends ``N`` requests to
``/items/<id>`` (distinct ids, so every request can be found again in every signal), and
checks the three signals the way the real backends would see them:

- ``/metrics``: exact ``http_server_request_duration_seconds_count`` per route and status,
  summed by the owner process over every worker (:func:`wait_route_counts`);
- OTLP stand-in: exactly one SERVER span per request, named ``GET /items/{item_id}``, with
  the app's ``load-item`` child span under it (:func:`check_spans`);
- Loki stand-in: every pushed body valid, and each request's log line carrying that
  request's trace id (:func:`check_logs`).
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.loki import LogEntry, LokiReceiver
from tests.support.otlp import OTLPReceiver, Span
from tests.support.procs import AppProcess, descendants, http_get, spyglass_argv
from tests.support.prom import parse, scrape
from tests.support.waiting import free_port

__all__ = [
    "APPS",
    "ITEM_ROUTE",
    "Launched",
    "check_logs",
    "check_spans",
    "check_telemetry",
    "drive",
    "launch",
    "metrics_dir_of",
    "route_counts",
    "wait_route_counts",
]

APPS = Path(__file__).resolve().parent / "apps"
ITEM_ROUTE = "/items/{item_id}"
SERVICE = "launch-test"
ENVIRONMENT = "ci"
_DURATION_COUNT = "http_server_request_duration_seconds_count"


@dataclass
class Launched:
    """A running app under the agent: its process and where to reach it."""

    proc: AppProcess
    app_port: int
    metrics_port: int
    base: str = field(init=False)
    metrics_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.app_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"


def agent_env(otlp: OTLPReceiver | None, loki: LokiReceiver | None) -> dict[str, str | None]:
    """Environment pointing the agent at the stand-ins (and nothing else of the CI's env)."""
    env: dict[str, str | None] = {
        "PYTHONUNBUFFERED": "1",
        "OTEL_SERVICE_NAME": None,
        "OTEL_TRACES_SAMPLER": None,
        "OTEL_TRACES_SAMPLER_ARG": None,
        "SPYGLASS_METRICS_OWNER": None,
        "SPYGLASS_METRICS_DIR": None,
        "DJANGO_SETTINGS_MODULE": None,
    }
    if otlp is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.endpoint
    if loki is not None:
        env["SPYGLASS_LOKI_URL"] = loki.endpoint
    return env


def launch(
    cmd: list[str],
    otlp: OTLPReceiver | None,
    loki: LokiReceiver | None,
    *,
    app_port: int,
    cwd: Path = APPS,
    env: Mapping[str, str | None] | None = None,
    ready_path: str = "/health",
    timeout: float = 40,
) -> Launched:
    """Start ``cmd`` under ``spyglass run`` and wait until the app and /metrics answer.

    The caller owns the returned process (use ``with launched.proc:``); on a start failure
    the process group is killed before the error propagates.
    """
    metrics_port = free_port()
    argv = spyglass_argv(*cmd, metrics_port=metrics_port, service_name=SERVICE,
                         environment=ENVIRONMENT)
    proc = AppProcess(argv, env={**agent_env(otlp, loki), **(env or {})}, cwd=cwd).start()
    launched = Launched(proc, app_port, metrics_port)
    try:
        proc.wait_http(launched.base + ready_path, timeout=timeout, status=200)
        proc.wait_http(launched.metrics_url, timeout=timeout, status=200)
    except BaseException:
        proc.close()
        raise
    return launched


def drive(base: str, ids: Iterable[int], concurrency: int = 1) -> None:
    """GET ``/items/<id>`` once per id (a new connection each); require 200 ``item <id>``.

    ``concurrency`` > 1 sends from that many client threads at once (threaded workers).
    """

    def one(item_id: int) -> None:
        status, _, body = http_get(f"{base}/items/{item_id}", timeout=10)
        assert (status, body) == (200, f"item {item_id}".encode()), (item_id, status, body)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, ids))


def route_counts(metrics_url: str) -> dict[tuple[str, str], float]:
    """{(http_route, status): request count} from one text-format scrape of ``/metrics``."""
    _, text = scrape(metrics_url)
    counts: dict[tuple[str, str], float] = {}
    for family in parse(text).values():
        for sample in family.samples:
            if sample.name == _DURATION_COUNT:
                key = (sample.labels["http_route"], sample.labels["http_response_status_code"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def wait_route_counts(
    metrics_url: str,
    expected: Mapping[tuple[str, str], int],
    allowed_extra: Iterable[str] = ("/health",),
    timeout: float = 15,
) -> dict[tuple[str, str], float]:
    """Poll ``/metrics`` until the counts of ``expected``'s keys equal it exactly.

    A request is recorded when its response is closed, a moment after the client has the
    body, hence polling. Counts above the expectation fail at once (double counting), and
    so does any route outside ``expected`` and ``allowed_extra`` (readiness probes).
    """
    deadline = time.monotonic() + timeout
    while True:
        counts = route_counts(metrics_url)
        unexpected = {k: v for k, v in counts.items()
                      if k not in expected and k[0] not in allowed_extra}
        assert not unexpected, f"unexpected series {unexpected}; all: {counts}"
        got = {k: counts.get(k, 0.0) for k in expected}
        over = {k: v for k, v in got.items() if v > expected[k]}
        assert not over, f"counted more requests than were sent: {over} > {dict(expected)}"
        if got == {k: float(v) for k, v in expected.items()}:
            return counts
        if time.monotonic() >= deadline:
            raise AssertionError(f"counts {got} != expected {dict(expected)} after {timeout}s")
        time.sleep(0.1)


def _item_id(span: Span) -> int | None:
    match = re.fullmatch(r"/items/(\d+)", str(span.attributes.get("url.path", "")))
    return int(match.group(1)) if match else None


def check_spans(
    otlp: OTLPReceiver,
    ids: list[int],
    name: str = f"GET {ITEM_ROUTE}",
    child: str | None = "load-item",
    timeout: float = 20,
) -> dict[int, Span]:
    """Exactly one SERVER span per request id, named ``name``, with ``child`` under it.

    Returns {item id: its server span}.
    """
    wanted = set(ids)

    def is_item_server(s: Span) -> bool:
        return s.kind == "SERVER" and _item_id(s) in wanted

    otlp.wait_for_spans(is_item_server, count=len(ids), timeout=timeout)
    if child is not None:
        otlp.wait_for_spans(lambda s: s.name == child, count=len(ids), timeout=timeout)
    spans = otlp.spans()
    assert otlp.errors == [], otlp.errors
    servers: dict[int, Span] = {}
    for span in filter(is_item_server, spans):
        item_id = _item_id(span)
        assert item_id is not None
        assert item_id not in servers, f"two server spans for /items/{item_id}"
        servers[item_id] = span
    assert sorted(servers) == sorted(ids)
    by_id = {s.span_id: s for s in spans}
    for span in servers.values():
        assert span.name == name, (span.name, span.attributes)
        assert span.attributes.get("http.response.status_code") == 200, span.attributes
        assert span.resource.get("service.name") == SERVICE, span.resource
        # The request came with no traceparent: the server span is the root of its trace.
        assert span.is_root, f"server span has a parent {span.parent_span_id}"
        assert span.parent_span_id not in by_id
    if child is not None:
        children = [s for s in spans if s.name == child]
        assert len(children) == len(ids), f"{len(children)} {child!r} spans for {len(ids)}"
        parents = {s.span_id: s for s in servers.values()}
        for kid in children:
            parent = parents.get(kid.parent_span_id)
            assert parent is not None, f"{child} span's parent is not a request's server span"
            assert kid.trace_id == parent.trace_id
            assert parent.start_ns <= kid.start_ns <= kid.end_ns <= parent.end_ns
        assert len({k.parent_span_id for k in children}) == len(ids), "two children, one parent"
    return servers


def check_logs(
    loki: LokiReceiver, servers: Mapping[int, Span], timeout: float = 20
) -> list[LogEntry]:
    """Each request's ``item <id> loaded`` line arrived once, with its request's trace id."""

    def item_of(entry: LogEntry) -> int | None:
        match = re.search(r"item (\d+) loaded", entry.line)
        return int(match.group(1)) if match else None

    entries = loki.wait_for(lambda e: item_of(e) in servers, count=len(servers),
                            timeout=timeout)
    assert loki.errors == [], loki.errors
    seen: dict[int, LogEntry] = {}
    for entry in entries:
        item_id = item_of(entry)
        assert item_id is not None and item_id not in seen, f"duplicate line {entry}"
        seen[item_id] = entry
        trace_id = servers[item_id].trace_id
        assert entry.labels == {"service_name": SERVICE, "environment": ENVIRONMENT,
                                "level": "warning"}, entry.labels
        assert entry.metadata.get("trace_id") == trace_id, (entry, trace_id)
        assert f"trace_id={trace_id}" in entry.line, entry.line
        assert "level=warning" in entry.line and "logger=apps.items" in entry.line, entry.line
        assert re.fullmatch(r"[0-9a-f]{16}", entry.metadata.get("span_id", "")), entry.metadata
    return entries


def check_telemetry(
    launched: Launched,
    otlp: OTLPReceiver,
    loki: LokiReceiver,
    ids: list[int],
    *,
    route: str = ITEM_ROUTE,
    span_name: str | None = None,
    child: str | None = "load-item",
    also_counted: int = 0,
) -> dict[int, Span]:
    """All three signals for the requests in ``ids`` (already sent); see the module doc.

    ``also_counted``: other requests that share ``route`` (for a framework-less app every
    path is ``unmatched``, so the one readiness probe of :func:`launch` counts there too).
    """
    wait_route_counts(launched.metrics_url, {(route, "200"): len(ids) + also_counted})
    servers = check_spans(otlp, ids, name=span_name or f"GET {route}", child=child)
    check_logs(loki, servers)
    return servers


def metrics_dir_of(pid: int) -> str:
    """The metrics directory a process of the app instance maps its files from.

    Found via /proc/<pid>/maps (every process maps its own ``*_<pid>.db`` files), since
    the owner sets ``SPYGLASS_METRICS_DIR`` in ``os.environ`` after start, which
    /proc/<pid>/environ does not show.
    """
    for candidate in [pid, *descendants(pid)]:
        try:
            maps = Path(f"/proc/{candidate}/maps").read_text()
        except OSError:
            continue
        for match in re.finditer(r"(/\S*/spyglass-metrics-[^/\s]+)/\S+\.db", maps):
            if os.path.isdir(match.group(1)):
                return match.group(1)
    raise AssertionError(f"no spyglass-metrics-* files mapped by {pid} or its children; "
                         f"dirs: {glob.glob('/tmp/spyglass-metrics-*')}")
