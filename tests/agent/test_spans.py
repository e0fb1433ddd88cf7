"""Light server spans behave like SDK spans where the API says how (status, events, end)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from spyglass.spans import LightSpan, LightTracer, LightTracerProvider


def _tracer(sampler=ALWAYS_ON) -> tuple[LightTracer, list[LightSpan], TracerProvider]:
    ended: list[LightSpan] = []
    provider = TracerProvider(sampler=sampler)
    tracer = LightTracerProvider(provider, ended.append).get_tracer("spyglass.server", "1")
    return tracer, ended, provider


def test_root_span_is_sampled_and_ended_once() -> None:
    tracer, ended, _ = _tracer()
    span = tracer.start_span("GET", None, SpanKind.SERVER, {"http.request.method": "GET"})
    ctx = span.get_span_context()
    assert ctx.is_valid and ctx.trace_flags.sampled and span.parent is None
    span.set_attribute("http.route", "/x")
    span.update_name("GET /x")
    span.end()
    span.end()
    span.set_attribute("late", 1)
    span.update_name("late")
    assert ended == [span]
    assert span.name == "GET /x" and "late" not in span.attributes
    assert not span.is_recording() and span.end_time >= span.start_time


def test_parent_decision_and_trace_state_follow_the_sdk_sampler() -> None:
    tracer, _, _ = _tracer(ParentBased(ALWAYS_OFF))
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    span = tracer.start_span("GET", set_span_in_context(NonRecordingSpan(parent)),
                             SpanKind.SERVER, {})
    assert span.context.trace_id == 0xABC and span.parent == parent
    assert span.context.trace_flags.sampled
    # The parent had no random-trace-id flag, so neither does the child (as in the SDK).
    assert not span.context.trace_flags.random_trace_id
    root = tracer.start_span("GET", None, SpanKind.SERVER, {})
    assert not root.context.trace_flags.sampled


def test_exception_event_and_status_match_the_sdk() -> None:
    tracer, _, provider = _tracer()
    light = tracer.start_span("GET", None, SpanKind.SERVER, {})
    sdk = provider.get_tracer("t").start_span("GET")
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        light.record_exception(exc)
        sdk.record_exception(exc)
    assert light.events[0].name == sdk.events[0].name == "exception"
    assert light.events[0].attributes == dict(sdk.events[0].attributes)
    light.set_status(Status(StatusCode.OK))
    light.set_status(StatusCode.ERROR, "later")
    assert light.status.status_code is StatusCode.OK


def test_events_are_bounded() -> None:
    tracer, _, _ = _tracer()
    span = tracer.start_span("GET", None, SpanKind.SERVER, {})
    for i in range(300):
        span.add_event(f"e{i}")
    assert len(span.events) == 128 and span.dropped_events == 172


def test_contrib_style_use_records_the_exception_and_parents_children() -> None:
    tracer, ended, _ = _tracer()
    try:
        with tracer.start_as_current_span("outer", kind=SpanKind.CLIENT) as outer, \
                tracer.start_as_current_span("inner") as inner:
            raise KeyError("k")
    except KeyError:
        pass
    assert ended == [inner, outer]
    assert inner.parent == outer.get_span_context()
    for span in (inner, outer):
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]


def test_attribute_limits_and_values(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")
    tracer, _, _ = _tracer()
    span = tracer.start_span("x", attributes={"a": "1234567", "none": None, "l": [1, 2]})
    span.set_attributes({"b": 1, "c": 2, "d": 3})
    span.set_attribute("a", "abcdefgh")
    assert span.attributes == {"a": "abcde", "l": (1, 2), "b": 1}
    assert span.dropped_attributes == 2


def test_fast_sampling_paths_decide_as_the_sdk_samplers() -> None:
    from spyglass.tracing import make_sampler

    parents = [None,
               SpanContext(0xA1, 0xB1, is_remote=True, trace_flags=TraceFlags(1)),
               SpanContext(0xA2, 0xB2, is_remote=True, trace_flags=TraceFlags(0)),
               SpanContext(0xA3, 0xB3, is_remote=False, trace_flags=TraceFlags(3))]
    for name in ("always_on", "parentbased_always_on", "traceidratio",
                 "parentbased_traceidratio"):
        sampler = make_sampler(name, 1.0)
        assert sampler.fast_path is not None
        fast, _, _ = _tracer(sampler)
        slow, _, _ = _tracer(make_sampler(name, 1.0))
        slow._fast_path = None
        for parent in parents:
            context = set_span_in_context(NonRecordingSpan(parent)) if parent else None
            a = fast.start_span("x", context, SpanKind.SERVER, {"k": "v"})
            b = slow.start_span("x", context, SpanKind.SERVER, {"k": "v"})
            assert a.context.trace_flags == b.context.trace_flags, (name, parent)
            assert a.context.trace_state == b.context.trace_state
            assert a.attributes == b.attributes == {"k": "v"}
    assert make_sampler("traceidratio", 0.5).fast_path is None
    assert make_sampler("parentbased_traceidratio", 0.99).fast_path is None
    assert make_sampler("parentbased_always_off", 1.0).fast_path is None


class _Key(str):
    """An attribute key of a str subclass, as a StrEnum member would be."""


def test_arguments_of_unexpected_types_are_taken_as_the_sdk_takes_them() -> None:
    """The compiled span (setup.py) must not raise TypeError where the SDK's span accepts a
    value: float timestamps, truthy non-bool flags, a non-str attribute key (dropped)."""
    tracer, ended, _ = _tracer()
    span = tracer.start_span("q", None, SpanKind.CLIENT, {"a": 1}, start_time=1.5e18,
                             record_exception=1, set_status_on_exception=0)
    span.set_attribute(42, "dropped")
    span.set_attribute("kept", "v")
    span.set_attribute(_Key("enum.key"), 2)  # a str subclass is a str key
    span.update_name("renamed")
    span.add_event("e", None, timestamp=1.6e18)
    span.set_status(StatusCode.ERROR, None)
    span.end(end_time=1.7e18)
    assert ended == [span]
    assert span.attributes == {"a": 1, "kept": "v", "enum.key": 2} and span.name == "renamed"
    assert (span.start_time, span.events[0].timestamp, span.end_time) == (
        1_500_000_000_000_000_000, 1_600_000_000_000_000_000, 1_700_000_000_000_000_000)
    with tracer.start_as_current_span("cm", end_on_exit=1) as inner:
        pass
    assert ended[-1] is inner


def test_span_contexts_are_the_ones_the_api_constructor_builds(monkeypatch) -> None:
    """start_span builds its SpanContext tuple directly (spyglass.spans.LAYOUT.context_is_tuple);
    each must equal, field for field, what SpanContext(...) gives, and so must the ones the
    fallback through the constructor gives."""
    from opentelemetry.trace import TraceState
    from opentelemetry.trace.span import DEFAULT_TRACE_STATE

    from spyglass import spans

    state = TraceState([("vendor", "v1")])
    parents = [None,
               SpanContext(0xA1, 0xB1, is_remote=True, trace_flags=TraceFlags(3),
                           trace_state=state),
               SpanContext(0xA2, 0xB2, is_remote=True, trace_flags=TraceFlags(0)),
               SpanContext(0, 0, is_remote=True)]  # invalid: a new root
    for fast in (True, False):
        monkeypatch.setattr(spans.LAYOUT, "context_is_tuple", fast)
        tracer, _, _ = _tracer()
        for parent in parents:
            context = set_span_in_context(NonRecordingSpan(parent)) if parent else None
            ctx = tracer.start_span("x", context, SpanKind.CLIENT, {}).context
            expected = SpanContext(ctx.trace_id, ctx.span_id, False, ctx.trace_flags,
                                   ctx.trace_state)
            assert type(ctx) is SpanContext
            assert tuple(ctx) == tuple(expected) and ctx.is_valid, (fast, parent)
            if parent is not None and parent.is_valid:
                assert ctx.trace_id == parent.trace_id
                assert ctx.trace_state is parent.trace_state
            else:
                assert ctx.trace_state is DEFAULT_TRACE_STATE


def test_context_helpers_agree_with_the_api(monkeypatch) -> None:
    """spyglass.spans reads and sets the API's ContextVar directly; the results must be the
    API's own, with the direct path (the default runtime context) and without it."""
    from opentelemetry import baggage, trace
    from opentelemetry import context as otel_context
    from opentelemetry.trace.propagation import _SPAN_KEY

    from spyglass import spans

    assert spans.LAYOUT.current is not None, (
        "the API's default runtime context is not contextvars")
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(spans.LAYOUT, "current", None)
        tracer, _, _ = _tracer()
        assert spans.current_span() is trace.get_current_span() is trace.INVALID_SPAN
        outer = otel_context.attach(baggage.set_baggage("tenant", "t1"))
        try:
            span = tracer.start_span("x", None, SpanKind.SERVER, {})
            token = spans.attach_span(span)
            assert trace.get_current_span() is span is spans.current_span()
            assert baggage.get_baggage("tenant") == "t1"  # the rest of the context stays
            assert spans.current_context() == otel_context.get_current()
            child = tracer.start_span("y", None, SpanKind.CLIENT, {})
            assert child.parent == span.context
            spans.detach(token)
            assert spans.current_span() is trace.get_current_span() is trace.INVALID_SPAN
            # An explicit context wins over the current one, as in the API.
            explicit = trace.set_span_in_context(span)
            assert spans.current_span(explicit) is trace.get_current_span(explicit) is span
            odd = otel_context.set_value(_SPAN_KEY, object())  # not a Span: INVALID_SPAN
            assert spans.current_span(odd) is trace.get_current_span(odd)
        finally:
            otel_context.detach(outer)
