"""Light spans for the spans Spyglass itself creates on the hot path (one per request).

Why not the SDK's ``Span`` for these: creating and ending an SDK span costs tens of µs in
pure Python (attribute validation under a lock, a processor fan-out, a ``ReadableSpan`` copy
at end), and the server span is created on every request of every app we run. Spyglass's
server span has a fixed shape that we build already clean (bounded strings of known keys), so a
plain object with a dict of attributes does the same job for a fraction of the cost.

What stays the SDK's: the sampler (``TracerProvider.sampler``, so ``OTEL_TRACES_SAMPLER`` and
parent-based decisions behave exactly as with any SDK span), the id generator, the resource and
every span made by the contrib instrumentations, which see a :class:`LightSpan` as an ordinary
``opentelemetry.trace.Span`` in the context and parent their spans to it. A light span is
queued on the same export worker as the SDK's spans and encoded by the same encoder, which
reads the ``ReadableSpan`` attribute names this class mirrors.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

__all__ = ["LightEvent", "LightSpan", "LightTracer"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED = TraceFlags(TraceFlags.RANDOM_TRACE_ID)
_UNSET = Status(StatusCode.UNSET)
_MAX_EVENTS = 128


class LightEvent:
    """A span event, shaped like the SDK's ``Event`` for the encoder."""

    __slots__ = ("attributes", "name", "timestamp")

    def __init__(self, name: str, attributes: types.Attributes, timestamp: int) -> None:
        self.name = name
        self.attributes = dict(attributes) if attributes else {}
        self.timestamp = timestamp


class LightSpan(trace.Span):
    """A recording span with the ``ReadableSpan`` fields the OTLP encoder reads."""

    __slots__ = ("_on_end", "attributes", "context", "dropped_events", "end_time", "events",
                 "instrumentation_scope", "kind", "name", "parent", "resource", "start_time",
                 "status")

    dropped_attributes = 0
    dropped_links = 0
    links: Sequence[Link] = ()

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None,
                 kind: SpanKind, attributes: dict[str, Any], resource: Any,
                 scope: InstrumentationScope, on_end: Callable[[LightSpan], None]) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.resource = resource
        self.instrumentation_scope = scope
        self.events: list[LightEvent] = []
        self.dropped_events = 0
        self.status = _UNSET
        self.start_time = time.time_ns()
        self.end_time: int | None = None
        self._on_end = on_end

    # -- opentelemetry.trace.Span

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is None and value is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is None:
            self.attributes.update(attributes)

    def add_event(self, name: str, attributes: types.Attributes = None,
                  timestamp: int | None = None) -> None:
        # May be called from another thread (the slow-request watchdog): list.append is atomic.
        if self.end_time is not None:
            return
        if len(self.events) >= _MAX_EVENTS:
            self.dropped_events += 1
            return
        self.events.append(LightEvent(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        return  # links are only set at start, and our spans start with none

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if self.status.status_code is StatusCode.OK:
            return  # OK is final, as in the SDK
        self.status = status

    def record_exception(self, exception: BaseException, attributes: types.Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        """The same ``exception`` event as the SDK's ``Span.record_exception``."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        attrs: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time.time_ns()
        self._on_end(self)


class LightTracer:
    """Starts :class:`LightSpan` s with the provider's sampler, ids and resource."""

    def __init__(self, provider: Any, scope_name: str, version: str,
                 on_end: Callable[[LightSpan], None]) -> None:
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self._resource = provider.resource
        self._scope = InstrumentationScope(scope_name, version)
        self._on_end = on_end

    def start_span(self, name: str, context: Context | None, kind: SpanKind,
                   attributes: dict[str, Any]) -> LightSpan:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self._ids.generate_trace_id()
        else:
            trace_id = parent.trace_id
        result = self._sampler.should_sample(context, trace_id, name, kind, attributes)
        if result.attributes and result.attributes is not attributes:
            attributes = {**attributes, **result.attributes}
        flags = _SAMPLED if result.decision.is_sampled() else _NOT_SAMPLED
        if parent is not None and not parent.trace_flags.random_trace_id:
            flags = TraceFlags(flags & ~TraceFlags.RANDOM_TRACE_ID)
        ctx = SpanContext(trace_id, self._ids.generate_span_id(), False, flags,
                          result.trace_state)
        return LightSpan(name, ctx, parent, kind, attributes, self._resource, self._scope,
                         self._on_end)
