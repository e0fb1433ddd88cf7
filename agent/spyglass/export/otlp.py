"""OTLP/HTTP protobuf encoding of finished spans, written straight to bytes.

Why not the SDK exporter's ``encode_spans``: it builds one protobuf message object per span,
attribute, value, event and status and then serialises the tree, which made encoding the
largest single cost Spyglass added to a request (benchmarks/RESULTS.md, "Profiles"), and it
holds the GIL while the request thread waits. The wire format is small and stable
(opentelemetry-proto's ``trace.proto``, ``common.proto``, ``resource.proto``), so this module
writes it directly: field tags and the encoded keys, resource and scopes are computed once and
cached, and a span costs a handful of ``bytes`` joins. ``tests/agent/export/test_otlp.py``
decodes the output with opentelemetry-proto and checks it against the SDK encoder field by
field.

Each span is encoded by the thread that ends it (:func:`encode_span`), and the export thread
only groups the encoded spans by scope and posts them (:func:`encode_request`). Encoding a
span whose attributes were written a moment ago on the same core costs a few µs; encoding
queued spans in the export thread cost about twice the CPU in all, on both threads: the
records were read from the other core's cache, and every chunk of encoding was a GIL handoff
between the threads (benchmarks/RESULTS.md, session 4). Session 18 tried it again with this
compiled encoder: the request thread saved about what the export thread then spent. ddtrace
makes the same choice: its tracer encodes a finished trace into the writer's buffer on the
thread that finished it.

Input: records (:func:`as_record`) or anything shaped like the SDK's ``ReadableSpan`` (the
app's own SDK spans, and ``spyglass.spans``' light spans).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.trace import SpanKind, StatusCode

from spyglass.spans import DEFAULT_TRACE_STATE, UNSET_STATUS, LightSpan, context_fields

__all__ = ["CONTENT_TYPE", "attribute_fields", "encode_client_span", "encode_request",
           "encode_span", "encode_spans", "scope_index"]

CONTENT_TYPE = "application/x-protobuf"

_pack_q: Final = struct.Struct("<Q").pack
_pack_d: Final = struct.Struct("<d").pack
_pack_i: Final = struct.Struct("<I").pack

# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. tag = field << 3 | type.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200


def _varint_slow(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Every length below 16 KiB as its varint, built without a per-value loop (startup cost).
_SMALL: Final = [bytes((i,)) for i in range(128)] + [
    bytes((lo | 0x80, hi)) for hi in range(1, 128) for lo in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 16384:
        return _SMALL[value]
    return _varint_slow(value)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return b"".join((tag, _SMALL[n] if n < 16384 else _varint_slow(n), payload))


# --------------------------------------------------------------------------- values


def _any_value(value: Any) -> bytes:
    """An encoded ``AnyValue`` message body."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8", "surrogateescape"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if value is None:
        return b""
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v))
                                        for k, v in value.items()))
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    raise TypeError(f"cannot encode a {type(value).__name__} attribute")


_KEYS: Final[dict[str, bytes]] = {}
#: Encoded ``KeyValue`` fields by field tag, then key, then value: method, scheme, route,
#: host, user agent, status code... repeat on every span. Two lookups by str (whose hash is
#: cached) per attribute, and no (tag, key, value) tuple built for the lookup.
_KV_CACHE: Final[dict[bytes, dict[str, dict[str | int, bytes]]]] = {}
_KV_COUNT: Final = [0]
_CACHE_MAX: Final = 4096


def _key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _field(b"\x0a", key.encode("utf-8", "surrogateescape"))
        if len(_KEYS) < _CACHE_MAX:
            _KEYS[key] = encoded
    return encoded


def _key_value(key: str, value: Any) -> bytes:
    """An encoded ``KeyValue`` message body."""
    return _key(key) + _field(b"\x12", _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """One length-delimited ``KeyValue`` field per attribute; bad values are skipped."""
    if not attributes:
        return []
    out = []
    by_key = _KV_CACHE.get(tag)
    if by_key is None:
        by_key = _KV_CACHE[tag] = {}
    # A light span's attributes are a dict, iterated here without a Python method call;
    # anything else (the SDK's BoundedAttributes, a resource's mapping) is copied into one.
    items: dict[str, Any] = attributes if type(attributes) is dict else dict(attributes)
    for key, value in items.items():
        cls = type(value)
        if cls is str or cls is int:
            # (bool is not int here: its encoding differs.)
            values = by_key.get(key)
            hit = values.get(value) if values is not None else None
            if hit is None:
                hit = _field(tag, _key_value(key, value))
                if cls is int or len(value) <= 256:
                    if _KV_COUNT[0] >= _CACHE_MAX:
                        _KV_CACHE.clear()
                        by_key = _KV_CACHE[tag] = {}
                        values = None
                        _KV_COUNT[0] = 0
                    if values is None:
                        values = by_key[key] = {}
                    values[value] = hit
                    _KV_COUNT[0] += 1
            out.append(hit)
            continue
        try:
            out.append(_field(tag, _key_value(key, value)))
        except Exception:  # noqa: BLE001 - one bad value must not lose the span
            continue
    return out


# --------------------------------------------------------------------------- spans

# SDK SpanKind (INTERNAL=0 .. CONSUMER=4) -> proto SpanKind field (INTERNAL=1 .. CONSUMER=5)
_KIND: Final = [b"\x30" + _varint(i + 1) for i in range(5)]


# A finished span as a plain tuple of ints, strings and untracked dicts/tuples: what the export
# queue holds. Exact tuples of such values are untracked by the garbage collector, so hundreds
# of queued spans never reach the old generation and never make full collections more
# frequent or slower (they were, as objects: 20 ms gen-2 pauses in request p99).
Record = tuple  # (scope, name, trace id, span id, parent id, parent remote, kind, start, end,
#                  attributes, events, status code, status text, trace state, dropped attrs,
#                  dropped events, links, dropped links)

#: What the export queue holds: (scope index, the span's ``ScopeSpans.spans`` field). A tuple
#: of an int and bytes, which the garbage collector never tracks.
Encoded = tuple[int, bytes]


_SCOPE_INDEX: dict[tuple[int, int], int] = {}
_SCOPE_TABLE: list[tuple[Any, Any]] = []
_SCOPE_LOCK = threading.Lock()
#: (scope, resource, index) of the pairs looked up lately, checked by identity.
_RECENT_SCOPES: Final[list[tuple[Any, Any, int]]] = []


def scope_index(resource: Any, scope: Any) -> int:
    """A small int for a (resource, scope) pair; the table keeps both alive.

    Spans end on any thread (threaded servers), so a new pair is added under a lock: two
    threads adding pairs at once must not get the same index. Known pairs need no lock, and
    the last few are found by identity first: a request's spans come from two or three
    tracers, and the (id, id) key costs two int allocations and a tuple per span."""
    for known_scope, known_resource, index in _RECENT_SCOPES:
        if known_scope is scope and known_resource is resource:
            return index
    key = (id(resource), id(scope))
    found = _SCOPE_INDEX.get(key)
    if found is None:
        with _SCOPE_LOCK:
            found = _SCOPE_INDEX.get(key)
            if found is None:
                _SCOPE_TABLE.append((resource, scope))
                found = _SCOPE_INDEX[key] = len(_SCOPE_TABLE) - 1
    if len(_RECENT_SCOPES) >= 8:
        del _RECENT_SCOPES[0]
    _RECENT_SCOPES.append((scope, resource, found))
    return found


def _trace_state(trace_state: Any) -> str:
    """The W3C ``tracestate`` header value; "" without entries. The shared empty default is
    checked by identity first: ``TraceState.__len__`` is an interpreted call per span."""
    if trace_state is None or trace_state is DEFAULT_TRACE_STATE or not trace_state:
        return ""
    return ",".join(f"{k}={v}" for k, v in trace_state.items())


# Enum members' ``.value`` is a Python-level property: a dict lookup is several times cheaper.
_KIND_VALUE = {kind: kind.value for kind in SpanKind}
_CODE_VALUE = {code: code.value for code in StatusCode}
# The same, keyed by the members' ids: an Enum's __hash__ is Python code, which a dict lookup
# calls on every span (about 1,500 instructions each); the members are singletons.
_CODE_BY_ID = {id(code): code.value for code in StatusCode}
# The kinds themselves, compared by identity (``id()`` allocates an int per call, and reading
# ``SpanKind.SERVER`` is an Enum class attribute lookup).
_SERVER: Final = SpanKind.SERVER
_CLIENT: Final = SpanKind.CLIENT
_INTERNAL: Final = SpanKind.INTERNAL
_PRODUCER: Final = SpanKind.PRODUCER
_CONSUMER: Final = SpanKind.CONSUMER


def _kind_value(kind: Any) -> int:
    if kind is _SERVER:
        return 1
    if kind is _CLIENT:
        return 2
    if kind is _INTERNAL:
        return 0
    if kind is _PRODUCER:
        return 3
    if kind is _CONSUMER:
        return 4
    return _KIND_VALUE[kind]


def _code_value(code: Any) -> int:
    value = _CODE_BY_ID.get(id(code))
    return _CODE_VALUE[code] if value is None else value


def as_record(span: Any) -> Record:
    """The record of anything shaped like the SDK's ``ReadableSpan``."""
    ctx = span.context
    parent = span.parent
    status = span.status
    events = span.events
    links = span.links
    fields = context_fields(ctx)
    trace_id, span_id, trace_state = fields[0], fields[1], fields[4]
    if parent is None:
        parent_id, parent_remote = 0, False
    else:
        fields = context_fields(parent)
        parent_id, parent_remote = fields[1], fields[2]
    # A light span's status stays the shared UNSET one unless set: its fields are Python
    # properties, two interpreted calls per span, so that one is known without reading them.
    if status is None or status is UNSET_STATUS:
        code, description = 0, ""
    else:
        code, description = _code_value(status.status_code), status.description or ""
    return (scope_index(span.resource, span.instrumentation_scope), span.name, trace_id,
            span_id, parent_id, parent_remote, _kind_value(span.kind), span.start_time or 0,
            span.end_time or 0, span.attributes,
            tuple((e.name, e.attributes, e.timestamp or 0) for e in events) if events else (),
            code, description,
            _trace_state(trace_state), span.dropped_attributes,
            span.dropped_events,
            tuple((link.context.trace_id, link.context.span_id, link.context.is_remote,
                   _trace_state(link.context.trace_state), link.attributes)
                  for link in links) if links else (), span.dropped_links)


# The fixed-width head of a span: trace_id (1) and span_id (2), with parent_span_id (4) when it
# has one, packed in one call; start and end times (fixed64, 7 and 8) likewise.
_M64: Final = (1 << 64) - 1
_HEAD: Final = struct.Struct(">2sQQ2sQ").pack
_HEAD_PARENT: Final = struct.Struct(">2sQQ2sQ2sQ").pack
_TIMES: Final = struct.Struct("<cQcQ").pack
_FLAGS: Final = {flags: b"\x85\x01" + _pack_i(flags)
                  for flags in (_HAS_IS_REMOTE, _HAS_IS_REMOTE | _IS_REMOTE)}


def _common_span(name: Any, trace_id: Any, span_id: Any, parent_id: Any, parent_remote: Any,
                 kind: bytes, start: Any, end: Any, attributes: Any,
                 encoded_attributes: bytes = b"") -> bytes:
    """The ``Span`` body of the common span: no trace state, events, links, drops or status
    (a server or DB span). Its fixed-width head -- trace_id (1), span_id (2) and, with a
    parent, parent_span_id (4) -- and its times (7, 8) are packed in one call each. The
    attributes come as a mapping, or (``attributes`` None) already encoded: the output of
    :func:`attribute_fields`."""
    encoded_name = name.encode("utf-8", "surrogateescape")
    n = len(encoded_name)
    if parent_id:
        head = _HEAD_PARENT(b"\x0a\x10", trace_id >> 64, trace_id & _M64, b"\x12\x08",
                            span_id, b"\x22\x08", parent_id)
        tail = _FLAGS[_HAS_IS_REMOTE | _IS_REMOTE if parent_remote else _HAS_IS_REMOTE]
    else:
        head = _HEAD(b"\x0a\x10", trace_id >> 64, trace_id & _M64, b"\x12\x08", span_id)
        tail = _FLAGS[_HAS_IS_REMOTE]
    fields = encoded_attributes if attributes is None else attribute_fields(attributes)
    return b"".join((head, b"\x2a", _SMALL[n] if n < 16384 else _varint_slow(n), encoded_name,
                     kind, _TIMES(b"\x39", start, b"\x41", end), fields, b"\x7a\x00", tail))


def attribute_fields(attributes: Mapping[str, Any]) -> bytes:
    """A span's ``attributes`` fields (9), encoded: for :func:`encode_client_span` callers,
    whose spans carry the same attributes again and again and who cache this."""
    return b"".join(_attributes(b"\x4a", attributes))


def encode_client_span(scope: int, name: str, trace_id: int, span_id: int, parent_id: int,
                       parent_remote: bool, start: int, end: int, fields: bytes) -> Encoded:
    """A CLIENT span with no status, events, links or trace state, from its parts: what
    :func:`encode_span` returns for a light span with these fields, for integrations that
    encode a span without making one (``integrations/_sqlite3_span.py``). ``scope`` is the
    tracer's :func:`scope_index`; ``fields`` is :func:`attribute_fields`' output."""
    return scope, _field(b"\x12", _common_span(name, trace_id, span_id, parent_id,
                                                parent_remote, _KIND[2], start, end, None,
                                                fields))


def _span(rec: Record) -> bytes:
    """A ``Span`` message body. The common span (no trace state, events, links, drops or
    status message) takes the short path; the output is the same either way."""
    (_, name, trace_id, span_id, parent_id, parent_remote, kind, start, end, attributes,
     events, code, description, trace_state, dropped_attributes, dropped_events, links,
     dropped_links) = rec
    if not (trace_state or events or links or dropped_attributes or dropped_events
            or dropped_links or code):
        return _common_span(name, trace_id, span_id, parent_id, parent_remote, _KIND[kind],
                            start, end, attributes)
    parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
    if trace_state:
        parts.append(_field(b"\x1a", trace_state.encode()))
    flags = _HAS_IS_REMOTE
    if parent_id:
        parts.append(b"\x22\x08")
        parts.append(parent_id.to_bytes(8, "big"))
        if parent_remote:
            flags |= _IS_REMOTE
    parts.append(_field(b"\x2a", name.encode("utf-8", "surrogateescape")))
    parts.append(_KIND[kind])
    parts.append(b"\x39")
    parts.append(_pack_q(start))
    parts.append(b"\x41")
    parts.append(_pack_q(end))
    parts.extend(_attributes(b"\x4a", attributes))
    if dropped_attributes:
        parts.append(b"\x50" + _varint(dropped_attributes))
    for event_name, event_attributes, timestamp in events:
        event_parts = [b"\x09", _pack_q(timestamp),
                       _field(b"\x12", event_name.encode("utf-8", "surrogateescape"))]
        event_parts.extend(_attributes(b"\x1a", event_attributes))
        parts.append(_field(b"\x5a", b"".join(event_parts)))
    if dropped_events:
        parts.append(b"\x60" + _varint(dropped_events))
    for link_trace, link_span, link_remote, link_state, link_attributes in links:
        body = [b"\x0a\x10", link_trace.to_bytes(16, "big"),
                b"\x12\x08", link_span.to_bytes(8, "big")]
        if link_state:
            body.append(_field(b"\x1a", link_state.encode()))
        body.extend(_attributes(b"\x22", link_attributes))
        body.append(b"\x35" + _pack_i(_HAS_IS_REMOTE | (_IS_REMOTE if link_remote else 0)))
        parts.append(_field(b"\x6a", b"".join(body)))
    if dropped_links:
        parts.append(b"\x70" + _varint(dropped_links))
    if code:
        message = b""
        if description:
            message = _field(b"\x12", description.encode("utf-8", "surrogateescape"))
        parts.append(_field(b"\x7a", message + b"\x18" + _varint(code)))
    else:
        parts.append(b"\x7a\x00")
    parts.append(b"\x85\x01" + _pack_i(flags))
    return b"".join(parts)


_RESOURCES: dict[int, tuple[Any, bytes]] = {}
_SCOPES: dict[int, tuple[Any, bytes]] = {}


def _resource(resource: Any) -> bytes:
    """``Resource`` field (1) of ``ResourceSpans``; cached: a process has one or two."""
    hit = _RESOURCES.get(id(resource))
    if hit is not None and hit[0] is resource:
        return hit[1]
    body = b"".join(_attributes(b"\x0a", resource.attributes if resource else None))
    encoded = _field(b"\x0a", body)
    if len(_RESOURCES) > 64:
        _RESOURCES.clear()
    _RESOURCES[id(resource)] = (resource, encoded)
    return encoded


def _scope(scope: Any) -> bytes:
    """``scope`` field (1) of ``ScopeSpans``; cached per InstrumentationScope object."""
    hit = _SCOPES.get(id(scope))
    if hit is not None and hit[0] is scope:
        return hit[1]
    body = b""
    if scope is not None:
        if scope.name:
            body += _field(b"\x0a", scope.name.encode())
        if scope.version:
            body += _field(b"\x12", scope.version.encode())
        body += b"".join(_attributes(b"\x1a", scope.attributes))
    encoded = _field(b"\x0a", body)
    if scope is not None and scope.schema_url:
        encoded += _field(b"\x1a", scope.schema_url.encode())  # ScopeSpans.schema_url
    if len(_SCOPES) > 256:
        _SCOPES.clear()
    _SCOPES[id(scope)] = (scope, encoded)
    return encoded


def encode_span(span: Any) -> Encoded:
    """One finished span (a record or a ``ReadableSpan``-shaped object), encoded."""
    if type(span) is LightSpan:
        encoded = _light_span(span)
        if encoded is not None:
            return encoded
    rec = span if type(span) is tuple else as_record(span)
    return rec[0], _field(b"\x12", _span(rec))


def _light_span(span: LightSpan) -> Encoded | None:
    """The common light span (no status, events, links, drops or trace state), encoded from
    its fields as :func:`_span` encodes its record, without building the record: a server or
    DB span ends on every request. None: take the general path (the same bytes)."""
    if (span.status is not UNSET_STATUS or span.events or span.links or span.dropped_attributes
            or span.dropped_events):
        return None
    name = span.name
    start, end = span.start_time, span.end_time
    fields = context_fields(span.context)
    # (Times out of fixed64's range raise in _TIMES, and kinds that are no SpanKind in
    # _kind_value, as they do on the general path.)
    if type(name) is not str or end is None:
        return None
    kind = _kind_value(span.kind)
    trace_state = fields[4]
    if trace_state is not None and trace_state is not DEFAULT_TRACE_STATE and trace_state:
        return None
    trace_id, span_id = fields[0], fields[1]
    parent = span.parent
    if parent is None:
        parent_id = 0
        parent_remote = False
    else:
        parent_fields = context_fields(parent)
        parent_id, parent_remote = parent_fields[1], parent_fields[2]
    return (scope_index(span.resource, span.instrumentation_scope),
            _field(b"\x12", _common_span(name, trace_id, span_id, parent_id, parent_remote,
                                         _KIND[kind], start, end, span.attributes)))


def encode_request(encoded: Iterable[Encoded]) -> bytes:
    """An ``ExportTraceServiceRequest`` of encoded spans, grouped by resource, then scope."""
    groups: dict[int, tuple[Any, dict[int, list[bytes]]]] = {}
    table = _SCOPE_TABLE
    for index, body in encoded:
        resource = table[index][0]
        by_scope = groups.get(id(resource))
        if by_scope is None:
            by_scope = groups[id(resource)] = (resource, {})
        spans = by_scope[1].get(index)
        if spans is None:
            spans = by_scope[1][index] = []
        spans.append(body)
    out = []
    for resource, scopes in groups.values():
        parts = [_resource(resource)]
        for index, spans in scopes.items():
            parts.append(_field(b"\x12", _scope(table[index][1]) + b"".join(spans)))
        if resource is not None and resource.schema_url:
            parts.append(_field(b"\x1a", resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(parts)))
    return b"".join(out)


def encode_spans(spans: Iterable[Any]) -> bytes:
    """An ``ExportTraceServiceRequest`` of spans (records or ``ReadableSpan``-shaped)."""
    return encode_request([encode_span(span) for span in spans])
