"""Light spans for the spans made on every request: Spyglass's server span and the spans of
the contrib instrumentations it runs (DB, cache, HTTP clients, Celery).

Why not the SDK's ``Span`` for these: creating and ending an SDK span costs tens of µs in pure
Python (attribute validation under a lock, a processor fan-out, a ``ReadableSpan`` copy at end);
an instrumented ``sqlite3`` query took 130 µs against 8 µs for the query itself, and the server
span is created on every request of every app we run. A light span is a plain object with a dict
of attributes, implementing the ``opentelemetry.trace`` API that the contrib instrumentations
are written against (they are handed a :class:`LightTracerProvider` as their
``tracer_provider``), so they run unchanged.

What stays the SDK's: the sampler (``TracerProvider.sampler``, so ``OTEL_TRACES_SAMPLER`` and
parent-based decisions behave exactly as for SDK spans), the id generator, the resource, the span
limits (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``...), and
every span the app makes itself through the global tracer provider. Light spans and SDK spans
parent each other through the ordinary context, are queued on the same export worker and
encoded by the same encoder, which reads the ``ReadableSpan`` attribute names mirrored here.
Ending a span calls ``on_end`` (scrubbing, dependency metrics, export: see ``tracing.py``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation import _SPAN_KEY as _API_SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE as _API_DEFAULT_TRACE_STATE
from opentelemetry.util import types

__all__ = ["LightEvent", "LightSpan", "LightTracer", "LightTracerProvider"]


def _tuple_layout() -> bool:
    """True when ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid)``, as in every OTel API release so far.

    Its fields are Python properties, and a property read costs about 2,000 instructions
    from compiled code: the per-span paths (encoding, the sampled check, exemplars, log
    lines) index the tuple instead, where this check at import says they may, and read the
    properties otherwise.
    """
    try:
        probe = SpanContext(0x1234, 0x5678, True, TraceFlags(1))
        return (isinstance(probe, tuple) and len(probe) == 6 and probe[0] == probe.trace_id
                and probe[1] == probe.span_id and probe[2] is probe.is_remote
                and probe[3] is probe.trace_flags and probe[4] is probe.trace_state
                and probe[5] is probe.is_valid)
    except Exception:  # noqa: BLE001
        return False


# What the per-span paths read of other modules, as this module's Final names: mypyc keeps
# those in C statics, where a plain module-level name (also an imported one) is a lookup in
# the module's dict on every read, about 130 instructions, and a request made some fifty.
_SPAN_KEY: Final = _API_SPAN_KEY
DEFAULT_TRACE_STATE: Final = _API_DEFAULT_TRACE_STATE
_SPAN_CONTEXT: Final = SpanContext
_INVALID_SPAN: Final = trace.INVALID_SPAN
_new_tuple: Final = tuple.__new__
_time_ns: Final = time.time_ns
_MAX_TRACE_ID: Final = (1 << 128) - 1
_MAX_SPAN_ID: Final = (1 << 64) - 1


def context_fields(ctx: Any) -> Any:
    """``(trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)`` of a span
    context: the ``SpanContext`` itself where it is that tuple, else read from its
    properties (another layout, or a SpanContext-like object)."""
    if LAYOUT.context_is_tuple and type(ctx) is _SPAN_CONTEXT:
        return ctx
    return (ctx.trace_id, ctx.span_id, ctx.is_remote, ctx.trace_flags, ctx.trace_state,
            ctx.is_valid)


def _context_var() -> Any:
    """The ContextVar that holds the OTel API's current ``Context``, when the runtime context
    is the API's own contextvars one (the default; ``OTEL_PYTHON_CONTEXT`` can name another).

    The API reaches it through three or four Python calls (``get_current_span`` ->
    ``get_value`` -> ``get_current`` -> the runtime's ``get_current``), about 5,000
    instructions, and a request touches it half a dozen times; the helpers below read and
    set it directly, with the same results, and go through the API when this is None.
    """
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        var = getattr(_RUNTIME_CONTEXT, "_current_context", None)
        if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
            return var
    except Exception:  # noqa: BLE001
        pass
    return None


class Layout:
    """What this module found at import about the OTel API it runs on, read on every span
    operation: an attribute of a compiled class is read natively, where a module-level name
    is a dict lookup. Tests set these to take the fallback paths."""

    def __init__(self) -> None:
        #: ``SpanContext`` fields may be read by index (see :func:`_tuple_layout`).
        self.context_is_tuple: bool = _tuple_layout()
        #: The API's context variable (:func:`_context_var`), or None: go through the API.
        self.current: Any = _context_var()


LAYOUT: Final = Layout()


def current_context() -> Any:
    """``opentelemetry.context.get_current()``."""
    var = LAYOUT.current
    return otel_context.get_current() if var is None else var.get()


def current_span(context: Any = None) -> Any:
    """``opentelemetry.trace.get_current_span(context)``."""
    if context is None:
        var = LAYOUT.current
        if var is None:
            return trace.get_current_span()
        context = var.get()
    span = context.get(_SPAN_KEY)
    # Our own spans first: ``trace.Span`` is an ABC, whose isinstance check is an interpreted
    # ``ABCMeta.__instancecheck__`` call (a request makes two or three of these checks).
    if span is None or (type(span) is not LightSpan and not isinstance(span, trace.Span)):
        return _INVALID_SPAN
    return span


def attach_span(span: Any, context: Any = None) -> Any:
    """``opentelemetry.context.attach(trace.set_span_in_context(span, context))``."""
    var = LAYOUT.current
    if var is None:
        return otel_context.attach(trace.set_span_in_context(span, context))
    values = dict(var.get() if context is None else context)
    values[_SPAN_KEY] = span
    return var.set(otel_context.Context(values))


def detach(token: Any) -> None:
    """``opentelemetry.context.detach(token)`` (which logs a token it cannot reset)."""
    var = LAYOUT.current
    if var is None:
        otel_context.detach(token)
        return
    try:
        var.reset(token)
    except Exception:  # noqa: BLE001 - the API's own detach says why, in its log
        otel_context.detach(token)


_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.RANDOM_TRACE_ID)
_UNSET: Final = Status(StatusCode.UNSET)
#: The status of every light span that nobody set one on (the encoder checks it by identity).
UNSET_STATUS: Final = _UNSET
_MAX_EVENTS: Final = 128


def _ns(value: Any) -> int:
    """A timestamp in ns as the caller gave it (an int, or a float: the SDK takes both), or
    now. The encoder writes fixed64 fields, so anything else is replaced, never raised."""
    if type(value) is int and value:
        return value
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    return _time_ns()


class LightEvent:
    """A span event, shaped like the SDK's ``Event`` for the encoder."""

    __slots__ = ("attributes", "name", "timestamp")

    def __init__(self, name: str, attributes: types.Attributes, timestamp: int) -> None:
        self.name = name
        self.attributes = dict(attributes) if attributes else {}
        self.timestamp = timestamp


class LightSpan(trace.Span):
    """A recording span with the ``ReadableSpan`` fields the OTLP encoder reads."""

    __slots__ = ("_limits", "_on_end", "_record_exception", "_set_status_on_exception",
                 "attributes", "context", "dropped_attributes", "dropped_events", "end_time",
                 "events", "instrumentation_scope", "kind", "links", "name", "parent",
                 "resource", "start_time", "status")

    dropped_links = 0

    # Compiled with mypyc (setup.py), which checks annotated types at run time: what the
    # contrib instrumentations and the app pass in is annotated ``Any`` (as the SDK's span
    # takes it), so a value of an unexpected type is never a TypeError in their code.
    def __init__(self, name: Any, context: SpanContext, parent: SpanContext | None,
                 kind: Any, attributes: dict[str, Any], resource: Any,
                 scope: InstrumentationScope, on_end: Callable[[LightSpan], None],
                 limits: tuple[int, int | None] = (128, None), links: Sequence[Link] = (),
                 start_time: Any = None, record_exception: Any = True,
                 set_status_on_exception: Any = True) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.resource = resource
        self.instrumentation_scope = scope
        self.links = links
        self.events: list[LightEvent] = []
        self.dropped_events = 0
        self.dropped_attributes = 0
        self.status = _UNSET
        self.start_time = _ns(start_time)
        self.end_time: int | None = None
        self._on_end = on_end
        self._limits = limits
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    # -- opentelemetry.trace.Span

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: Any, value: Any) -> None:
        if self.end_time is not None or value is None or not isinstance(key, str):
            return  # as the SDK, which drops (and warns of) an attribute with a non-str key
        attrs = self.attributes
        max_count, max_length = self._limits
        if key not in attrs and len(attrs) >= max_count:
            self.dropped_attributes += 1
            return
        if type(value) is list:
            value = tuple(value)
        if max_length is not None and type(value) is str and len(value) > max_length:
            value = value[:max_length]
        attrs[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: Any, attributes: types.Attributes = None,
                  timestamp: Any = None) -> None:
        # May be called from another thread (the slow-request watchdog): list.append is atomic.
        if self.end_time is not None:
            return
        if len(self.events) >= _MAX_EVENTS:
            self.dropped_events += 1
            return
        self.events.append(LightEvent(name, attributes, _ns(timestamp)))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is None and context is not None and context.is_valid:
            self.links = (*self.links, Link(context, attributes))

    def update_name(self, name: Any) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Any, description: Any = None) -> None:
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

    def __exit__(self, exc_type: Any, exc_val: BaseException | None, exc_tb: Any) -> None:
        """As the SDK's span: record the exception and an ERROR status, then end."""
        if exc_val is not None and self.end_time is None:
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def end(self, end_time: Any = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = _ns(end_time)
        self._on_end(self)


def span_context(span: Any) -> Any:
    """``span``'s SpanContext. A light span's is an attribute, read natively; any other
    span's is a Python method call (the log tap and ``child_ids`` ask this of every current
    span)."""
    if type(span) is LightSpan:
        light: LightSpan = span
        return light.context
    return span.get_span_context()


class LightTracer(trace.Tracer):
    """Starts :class:`LightSpan` s with the provider's sampler, ids, resource and limits."""

    def __init__(self, provider: Any, scope: InstrumentationScope,
                 on_end: Callable[[LightSpan], None]) -> None:
        self._sampler = provider.sampler
        self._fast_path = getattr(provider.sampler, "fast_path", None)
        self._ids = provider.id_generator
        self._resource = provider.resource
        limits = provider._span_limits  # the SDK provider's OTEL_*_LIMIT settings
        self._limits = (limits.max_span_attributes or 128, limits.max_span_attribute_length)
        self._scope = scope
        self._on_end = on_end

    @property
    def scope(self) -> InstrumentationScope:
        """The instrumentation scope of the spans this tracer starts."""
        return self._scope

    @property
    def resource(self) -> Any:
        """The provider's resource, which the spans this tracer starts carry."""
        return self._resource

    def start_span(self, name: Any, context: Any = None,
                   kind: Any = SpanKind.INTERNAL, attributes: types.Attributes = None,
                   links: Sequence[Link] | None = (), start_time: Any = None,
                   record_exception: Any = True,
                   set_status_on_exception: Any = True) -> LightSpan:
        current = current_span(context)
        # No current span (a root: every server span) gives INVALID_SPAN, whose context is
        # invalid; its get_span_context is an interpreted call.
        parent: Any = None if current is _INVALID_SPAN else span_context(current)
        parent_flags = 0
        parent_state: Any = None
        valid = False
        if parent is not None:
            fields = context_fields(parent)
            valid = fields[5]
            if valid:
                trace_id, parent_flags, parent_state = fields[0], int(fields[3]), fields[4]
        if not valid:
            parent = None
            trace_id = self._ids.generate_trace_id()
        links = links or ()
        fast = self._fast_path
        if fast is not None:
            # always_on / parentbased_always_on: the decision the SDK samplers would return.
            sampled = fast == "always" or parent is None or bool(parent_flags & 1)
            trace_state = parent_state
            result_attributes = attributes
        else:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes,
                                                 links)
            sampled = result.decision.is_sampled()
            trace_state = result.trace_state
            result_attributes = result.attributes
        attrs: dict[str, Any]
        if result_attributes is attributes and type(attributes) is dict:
            attrs = attributes  # our caller built it for this span
        else:
            attrs = {}
            for key, value in (result_attributes or {}).items():
                if value is not None:
                    attrs[key] = tuple(value) if type(value) is list else value
        flags = _SAMPLED if sampled else _NOT_SAMPLED
        if parent is not None and not parent_flags & 2:  # the parent's trace id is not random
            flags = TraceFlags(flags & ~TraceFlags.RANDOM_TRACE_ID)
        span_id = self._ids.generate_span_id()
        if LAYOUT.context_is_tuple:
            # What SpanContext.__new__ builds, without its interpreted checks.
            ctx = _new_tuple(_SPAN_CONTEXT, (
                trace_id, span_id, False, flags,
                DEFAULT_TRACE_STATE if trace_state is None else trace_state,
                0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID))
        else:
            ctx = SpanContext(trace_id, span_id, False, flags, trace_state)
        return LightSpan(name, ctx, parent, kind, attrs, self._resource, self._scope,
                         self._on_end, self._limits, tuple(links), start_time,
                         record_exception, set_status_on_exception)

    def child_ids(self, context: Any) -> tuple[int, int, int, bool, bool] | None:
        """``(trace id, span id, parent span id or 0, parent is remote, sampled)`` of a new
        span under ``context``'s current span, decided as :meth:`start_span` decides them.

        For an integration that encodes its span without making a :class:`LightSpan`
        (``integrations/_sqlite3_span.py``: a span nobody else can see). None where
        ``start_span`` would call the sampler (no fast path) or the span would inherit a
        trace state: the caller then makes a light span as usual.
        """
        fast = self._fast_path
        if fast is None:
            return None
        current = current_span(context)
        if current is not _INVALID_SPAN:
            fields = context_fields(span_context(current))
            if fields[5]:  # valid
                state = fields[4]
                if state is not None and state is not DEFAULT_TRACE_STATE and state:
                    return None
                return (fields[0], self._ids.generate_span_id(), fields[1], bool(fields[2]),
                        fast == "always" or bool(int(fields[3]) & 1))
        return (self._ids.generate_trace_id(), self._ids.generate_span_id(), 0, False, True)

    def start_as_current_span(self, name: Any, context: Any = None,
                              kind: Any = SpanKind.INTERNAL,
                              attributes: types.Attributes = None,
                              links: Sequence[Link] | None = (), start_time: Any = None,
                              record_exception: Any = True, set_status_on_exception: Any = True,
                              end_on_exit: Any = True) -> Any:
        """``with tracer.start_as_current_span(...)``, as the SDK's, without two generators.

        The SDK's version is a generator-based context manager wrapping ``use_span``, another
        one; every contrib DB, cache and HTTP client span goes through it, so here it is one
        small object. It also works as a decorator, like the API's.
        """
        return _CurrentSpan(self, (name, context, kind, attributes, links, start_time,
                                   record_exception, set_status_on_exception), end_on_exit)


class _CurrentSpan:
    """Start a span on ``__enter__``, make it current, and end it on ``__exit__``.

    The same exception handling as ``opentelemetry.trace.use_span``: an ``Exception`` is
    recorded and sets an ERROR status (if asked); any exit ends the span (if asked).
    """

    __slots__ = ("_args", "_end_on_exit", "_span", "_token", "_tracer")

    def __init__(self, tracer: LightTracer, args: tuple[Any, ...], end_on_exit: Any) -> None:
        self._tracer = tracer
        self._args = args
        self._end_on_exit = end_on_exit
        self._span: LightSpan | None = None
        self._token: object = None

    def __enter__(self) -> LightSpan:
        span = self._span = self._tracer.start_span(*self._args)
        self._token = attach_span(span)
        return span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span = self._span
        if span is None:
            return
        try:
            detach(self._token)
            if isinstance(exc, Exception) and span.end_time is None:
                if self._args[6]:
                    span.record_exception(exc)
                if self._args[7]:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            if self._end_on_exit:
                span.end()

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Used as a decorator: a new span per call (async functions included)."""
        import functools
        import inspect

        tracer, args, end_on_exit = self._tracer, self._args, self._end_on_exit
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                with _CurrentSpan(tracer, args, end_on_exit):
                    return await func(*a, **kw)
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with _CurrentSpan(tracer, args, end_on_exit):
                return func(*a, **kw)
        return wrapper


class LightTracerProvider(trace.TracerProvider):
    """What the contrib instrumentations get as ``tracer_provider``: one tracer per scope."""

    def __init__(self, provider: Any, on_end: Callable[[LightSpan], None]) -> None:
        self._provider = provider
        self._on_end = on_end
        self._tracers: dict[tuple[str, str | None, str | None], LightTracer] = {}

    def get_tracer(self, instrumenting_module_name: str,
                   instrumenting_library_version: str | None = None,
                   schema_url: str | None = None,
                   attributes: types.Attributes = None) -> LightTracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = self._tracers.get(key)
        if tracer is None:
            scope = InstrumentationScope(instrumenting_module_name,
                                         instrumenting_library_version, schema_url, attributes)
            tracer = self._tracers[key] = LightTracer(self._provider, scope, self._on_end)
        return tracer
