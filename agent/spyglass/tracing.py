"""The OpenTelemetry tracer provider: sampler, private ids, scrubbing, derived metrics, export.

Span processors, in order:

1. :class:`ScrubProcessor` (``on_start``) rewrites URL and SQL attributes set by any contrib
   instrumentation, so secrets are gone before anything else sees the span.
2. :class:`DependencyMetricsProcessor` (``on_end``) turns client spans into
   ``http_client_request_duration_seconds`` and ``db_client_operation_duration_seconds``: one
   place for every HTTP and DB library, whichever instrumentation made the span.
3. :class:`ExportProcessor` encodes each sampled span as it ends (:mod:`spyglass.export.otlp`
   says why there) and queues it on a :class:`~spyglass.export.batch.BatchWorker`, whose
   thread posts OTLP/HTTP protobuf over one kept-open connection (:mod:`spyglass.export.http`).

Sampling decides what is *exported*, not what is *measured*: a trace the ratio sampler drops is
still recorded (``RECORD_ONLY``), so dependency metrics stay exact at any sampling rate, like the
stats Datadog computes from every span.
"""

from __future__ import annotations

import atexit
import os
import random
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from spyglass import __version__, forksafe
from spyglass import metrics as _metrics
from spyglass._log import get_logger
from spyglass.config import Config
from spyglass.export.batch import BatchWorker
from spyglass.export.http import Poster, otlp_poster
from spyglass.export.otlp import CONTENT_TYPE, Encoded, encode_request, encode_span
from spyglass.scrub import REDACTED, SENSITIVE_HEADERS, scrub_query, scrub_sql, scrub_url
from spyglass.spans import LightSpan, LightTracer, LightTracerProvider, context_fields

__all__ = ["PrivateIdGenerator", "setup"]

#: The instrumentation scope of the server spans spyglass.server creates.
SERVER_SCOPE: Final = "spyglass.server"
_URL_ATTRS: Final = ("url.full", "http.url", "url.query", "http.target", "db.connection_string")
_SQL_ATTRS: Final = ("db.statement", "db.query.text")
_HEADER_ATTR_PREFIXES: Final = ("http.request.header.", "http.response.header.")


class _Export:
    """The span export set up by :func:`setup`, read on every span that ends: attributes of
    a compiled class are read natively, where module-level names that ``setup`` reassigns
    would be a dict lookup each (about 130 instructions)."""

    def __init__(self) -> None:
        self.worker: BatchWorker[Encoded] | None = None
        #: The server spans' InstrumentationScope.
        self.server_scope: Any = None
        #: The scope of spans whose integration scrubs what it sets and records their
        #: dependency metric itself (spyglass.sqlite3).
        self.self_recorded_scope: Any = None


EXPORT: Final = _Export()


class PrivateIdGenerator(IdGenerator):
    """Random ids from a private generator, reseeded after fork.

    The SDK's default draws from the global ``random`` module, so an app that seeds it for
    reproducible behaviour would see a different sequence under the agent. Forked workers must
    also not share their parent's sequence, or they would mint the same ids.
    """

    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(16))
        forksafe.register_after_in_child(self._reseed)

    def _reseed(self) -> None:
        self._rng = random.Random(os.urandom(16))

    def generate_span_id(self) -> int:
        value = self._rng.getrandbits(64)
        while value == 0:
            value = self._rng.getrandbits(64)
        return value

    def generate_trace_id(self) -> int:
        value = self._rng.getrandbits(128)
        while value == 0:
            value = self._rng.getrandbits(128)
        return value

    def is_trace_id_random(self) -> bool:
        return True


class _RecordAlways(Sampler):
    """Wraps a sampler so that its DROP becomes RECORD_ONLY (measured, not exported)."""

    def __init__(self, inner: Sampler, fast_path: str | None = None) -> None:
        self._inner = inner
        #: "always" (always_on) or "parent" (parentbased_always_on): decisions that need no
        #: sampler call, which spyglass.spans takes on the hot path.
        self.fast_path = fast_path

    def should_sample(self, parent_context: Any, trace_id: Any, name: Any,
                      kind=None, attributes=None, links=None, trace_state=None) -> SamplingResult:
        result = self._inner.should_sample(parent_context, trace_id, name, kind, attributes,
                                           links, trace_state)
        if result.decision is Decision.DROP:
            # A DROP result carries no attributes (the SDK samplers set them to None), and the
            # SDK gives a new span only its sampling result's attributes: pass the caller's
            # on, or unsampled spans lose everything set at start_span (requests' and httpx's
            # http.request.method, url.full...) and their client metrics go uncounted.
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordAlways{{{self._inner.get_description()}}}"


def make_sampler(name: str, ratio: float) -> Sampler:
    base: Sampler
    if name.endswith("always_on"):
        base = ALWAYS_ON
    elif name.endswith("always_off"):
        base = ALWAYS_OFF
    else:
        base = TraceIdRatioBased(ratio)
    # A ratio of 1 samples every trace id, like always_on.
    fast = "always" if base is ALWAYS_ON or (
        isinstance(base, TraceIdRatioBased) and ratio >= 1.0) else None
    if name.startswith("parentbased_"):
        base = ParentBased(base)
        fast = "parent" if fast else None
    return _RecordAlways(base, fast)


class ScrubProcessor(SpanProcessor):
    """Redacts URL credentials/secret parameters, SQL literals and secret headers.

    ``on_start`` sees only the attributes passed to ``start_span``. Most contrib
    instrumentations (dbapi/psycopg/psycopg2/sqlite3, SQLAlchemy, redis) set ``db.statement``
    and friends *after* the span started, so the same pass runs again in ``_on_ending``, the
    SDK's hook that runs after the last ``set_attribute`` and before ``on_end`` hands the span
    to the exporter. Without it, SQL literals were exported verbatim.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attrs = span.attributes
        if not attrs:
            return
        for key, value in _scrubbed(attrs):
            span.set_attribute(key, value)

    def _on_ending(self, span: Span) -> None:
        attrs = getattr(span, "_attributes", None)
        if not attrs:
            return
        changes = _scrubbed(attrs)
        if not changes:
            return
        # The span is already ended, so set_attribute() refuses; the SDK freezes the
        # BoundedAttributes with its _immutable flag, which we lift for this one write.
        try:
            attrs._immutable = False
            for key, value in changes:
                attrs[key] = value
        except Exception:  # noqa: BLE001
            get_logger().debug("scrub on ending failed", exc_info=True)
        finally:
            attrs._immutable = True


def _scrubbed(attrs: Any) -> list[tuple[str, str | tuple[str, ...]]]:
    """(key, new value) for every attribute that carries a secret or SQL literals."""
    changes: list[tuple[str, str | tuple[str, ...]]] = []
    for key in _URL_ATTRS:
        value = attrs.get(key)
        if isinstance(value, str):
            clean = _scrub_url_attr(value)
            if clean != value:
                changes.append((key, clean))
    for key in _SQL_ATTRS:
        value = attrs.get(key)
        if isinstance(value, str):
            clean = scrub_sql(value)
            if clean != value:
                changes.append((key, clean))
    for key in attrs:
        # http.request.header.authorization, http.response.header.set-cookie, ...
        if key.startswith(_HEADER_ATTR_PREFIXES) and \
                key.rsplit(".", 1)[-1].replace("_", "-") in SENSITIVE_HEADERS and \
                attrs[key] != (REDACTED,):
            changes.append((key, (REDACTED,)))
    return changes


def _scrub_url_attr(value: str) -> str:
    if "://" in value:
        return scrub_url(value)
    path, sep, query = value.partition("?")
    if not sep:
        return scrub_query(value) if "=" in value else value
    return path + sep + scrub_query(query)


class DependencyMetricsProcessor(SpanProcessor):
    """Dependency metrics from the SDK's spans (the app's own; contrib spans are light)."""

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not trace.SpanKind.CLIENT:
            return
        if span.end_time is None or span.start_time is None:
            return
        record_dependency(span.attributes or {}, (span.end_time - span.start_time) / 1e9)


def record_dependency(attrs: Any, seconds: float) -> None:
    """One observation of http_client_request_duration or db_client_operation_duration."""
    inst = _metrics._instruments  # what metrics.get() returns, without an interpreted call
    if inst is None:
        return
    try:
        method = attrs.get("http.request.method", attrs.get("http.method"))
        if method is not None:
            host = attrs.get("server.address", attrs.get("net.peer.name", ""))
            code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
            inst.http_client_duration.labels(
                str(method), str(host), str(code) if code is not None else "").observe(seconds)
            return
        system = attrs.get("db.system.name", attrs.get("db.system"))
        if system is not None:
            op = attrs.get("db.operation.name", attrs.get("db.operation"))
            if op is None:
                op = _operation_from(attrs)
            if op is None:
                # No statement and no operation: not a DB operation but e.g. the
                # SQLAlchemy instrumentation's "connect" span around every pool
                # checkout, which would otherwise be counted as a CONNECT operation.
                return
            inst.db_client_duration.labels(str(system), str(op).upper()[:32]).observe(seconds)
    except Exception:  # noqa: BLE001
        get_logger().debug("dependency metric failed", exc_info=True)


def _operation_from(attrs: Any) -> str | None:
    stmt = attrs.get("db.statement") or attrs.get("db.query.text")
    if isinstance(stmt, str) and stmt.strip():
        return stmt.strip().split(None, 1)[0]
    return None


class ExportProcessor(SpanProcessor):
    """Encodes the app's own sampled SDK spans as they end and queues them for export."""

    def __init__(self, worker: BatchWorker[Encoded]) -> None:
        self._worker = worker

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            try:
                self._worker.put(encode_span(span))
            except Exception:  # noqa: BLE001 - a span we cannot encode is dropped, not raised
                get_logger().debug("encoding a span failed", exc_info=True)

    def shutdown(self) -> None:
        self._worker.shutdown(timeout=3.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._worker.flush(timeout=min(timeout_millis / 1000, 3.0))


def _resource(config: Config) -> Resource:
    import socket

    attrs: dict[str, str | int] = {
        "service.name": config.service_name,
        "deployment.environment": config.environment,
        "deployment.environment.name": config.environment,
        "host.name": socket.gethostname(),
        # No process.pid: the resource is built once and inherited by forked workers, where
        # it would name the master. Per-worker views use the /metrics pid label instead.
        "process.runtime.name": "cpython",
        "telemetry.distro.name": "spyglass",
        "telemetry.distro.version": __version__,
    }
    if config.service_version:
        attrs["service.version"] = config.service_version
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES; ours (from explicit settings) win.
    return Resource.create({k: v for k, v in attrs.items()})


def _make_sender(config: Config):
    def send(batch: Sequence[Encoded]) -> bool:
        return _send(config, batch)

    return send


_poster: list[Poster] = []


def _send(config: Config, batch: Sequence[Encoded]) -> bool:
    """POST one batch of encoded spans (export thread); raises if it did not land."""
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

    if not _poster:
        _poster.append(otlp_poster(config.traces_url, config.export_timeout, "TRACES"))
    body = encode_request(batch)
    # Our own upload must never become a span (http.client is not instrumented by us, but an
    # app may instrument it): the same suppression key contrib instrumentations honour.
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        _poster[0].post(body, CONTENT_TYPE)
    finally:
        detach(token)
    return True


_light: LightTracer | None = None
_light_provider: LightTracerProvider | None = None


def light_tracer() -> LightTracer | None:
    """The tracer of spyglass.server's request spans (None until ``setup`` ran)."""
    return _light


def instrumentation_provider() -> trace.TracerProvider:
    """The tracer provider handed to contrib instrumentations: light spans (spans.py)."""
    return _light_provider or trace.get_tracer_provider()


_CLIENT: Final = trace.SpanKind.CLIENT


def self_recording_tracer(name: str) -> Any:
    """A light tracer for an integration of ours that scrubs its spans' attributes and
    records their duration metric itself, so ending one skips the generic scrub pass and
    ``record_dependency``; only one such scope is kept."""
    tracer = instrumentation_provider().get_tracer(name)
    if isinstance(tracer, LightTracer):
        EXPORT.self_recorded_scope = tracer.scope
    return tracer


def _light_span_ended(span: LightSpan) -> None:
    """Scrub, derive dependency metrics, queue for export: the SDK processors' jobs."""
    try:
        attrs = span.attributes
        # The server span's attributes are ours, already clipped and scrubbed (server.py).
        # The sqlite3 spans' are too, and that integration records their duration metric
        # itself (integrations/_sqlite3_span.py).
        scope = span.instrumentation_scope
        export = EXPORT
        if scope is not export.self_recorded_scope:
            if attrs and scope is not export.server_scope:
                for key, value in _scrubbed(attrs):
                    attrs[key] = value
            if span.kind is _CLIENT and span.end_time is not None:
                record_dependency(attrs, (span.end_time - span.start_time) / 1e9)
        worker = export.worker
        if worker is not None and context_fields(span.context)[3] & 1:  # sampled
            worker.put(encode_span(span))
    except Exception:  # noqa: BLE001
        get_logger().debug("ending a span failed", exc_info=True)


def setup(config: Config) -> TracerProvider:
    """Install the global tracer provider (once per process tree; forks inherit it)."""
    global _light, _light_provider
    provider = TracerProvider(
        sampler=make_sampler(config.sampler, config.sampler_arg),
        resource=_resource(config),
        id_generator=PrivateIdGenerator(),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(ScrubProcessor())
    provider.add_span_processor(DependencyMetricsProcessor())
    if config.traces:
        worker = EXPORT.worker = BatchWorker(
            "traces", _make_sender(config), max_queue=config.max_queue_size,
            max_batch=config.export_batch_size, interval=config.export_delay / 1000)
        provider.add_span_processor(ExportProcessor(worker))
    trace.set_tracer_provider(provider)
    _light_provider = LightTracerProvider(provider, _light_span_ended)
    _light = _light_provider.get_tracer(SERVER_SCOPE, __version__)
    EXPORT.server_scope = _light.scope
    atexit.register(flush, 3.0)
    return provider


def flush(timeout: float = 3.0) -> None:
    worker = EXPORT.worker
    if worker is not None:
        worker.flush(timeout)


def export_encoded(encoded: Encoded) -> None:
    """Queue a sampled span that its integration encoded itself (``encode_client_span``)."""
    worker = EXPORT.worker
    if worker is not None:
        worker.put(encoded)
