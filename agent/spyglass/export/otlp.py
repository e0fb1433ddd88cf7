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

Input: anything shaped like the SDK's ``ReadableSpan`` (``spyglass.server`` exports its own
light server spans with the same attribute names).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["CONTENT_TYPE", "encode_spans"]

CONTENT_TYPE = "application/x-protobuf"

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack

# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. tag = field << 3 | type.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


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
_SMALL = [bytes((i,)) for i in range(128)] + [
    bytes((lo | 0x80, hi)) for hi in range(1, 128) for lo in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 16384:
        return _SMALL[value]
    return _varint_slow(value)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 16384 else _varint_slow(n)) + payload


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


_KEYS: dict[str, bytes] = {}
_STRING_KV: dict[tuple[str, str], bytes] = {}
_CACHE_MAX = 4096


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
    cache = _STRING_KV
    for key, value in attributes.items():
        if value.__class__ is str:
            # Method, scheme, route, host, user agent...: a few values repeat on every span.
            hit = cache.get((key, value))
            if hit is None:
                hit = _field(tag, _key_value(key, value))
                if len(value) <= 256:
                    if len(cache) >= _CACHE_MAX:
                        cache.clear()
                    cache[(key, value)] = hit
            out.append(hit)
            continue
        try:
            out.append(_field(tag, _key_value(key, value)))
        except Exception:  # noqa: BLE001 - one bad value must not lose the span
            continue
    return out


# --------------------------------------------------------------------------- spans

# SDK SpanKind (INTERNAL=0 .. CONSUMER=4) -> proto SpanKind field (INTERNAL=1 .. CONSUMER=5)
_KIND = [b"\x30" + _varint(i + 1) for i in range(5)]


def _span(span: Any) -> bytes:
    ctx = span.context
    parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"),
             b"\x12\x08", ctx.span_id.to_bytes(8, "big")]
    trace_state = ctx.trace_state
    if trace_state:
        parts.append(_field(b"\x1a", ",".join(
            f"{k}={v}" for k, v in trace_state.items()).encode()))
    parent = span.parent
    flags = _HAS_IS_REMOTE
    if parent is not None:
        parts.append(b"\x22\x08")
        parts.append(parent.span_id.to_bytes(8, "big"))
        if parent.is_remote:
            flags |= _IS_REMOTE
    parts.append(_field(b"\x2a", span.name.encode("utf-8", "surrogateescape")))
    parts.append(_KIND[span.kind.value])
    parts.append(b"\x39")
    parts.append(_pack_q(span.start_time or 0))
    parts.append(b"\x41")
    parts.append(_pack_q(span.end_time or 0))
    parts.extend(_attributes(b"\x4a", span.attributes))
    dropped = span.dropped_attributes
    if dropped:
        parts.append(b"\x50" + _varint(dropped))
    for event in span.events:
        event_parts = [b"\x09", _pack_q(event.timestamp or 0),
                       _field(b"\x12", event.name.encode("utf-8", "surrogateescape"))]
        event_parts.extend(_attributes(b"\x1a", event.attributes))
        parts.append(_field(b"\x5a", b"".join(event_parts)))
    dropped = span.dropped_events
    if dropped:
        parts.append(b"\x60" + _varint(dropped))
    for link in span.links:
        lctx = link.context
        lflags = _HAS_IS_REMOTE | (_IS_REMOTE if lctx.is_remote else 0)
        body = [b"\x0a\x10", lctx.trace_id.to_bytes(16, "big"),
                b"\x12\x08", lctx.span_id.to_bytes(8, "big")]
        if lctx.trace_state:
            body.append(_field(b"\x1a", ",".join(
                f"{k}={v}" for k, v in lctx.trace_state.items()).encode()))
        body.extend(_attributes(b"\x22", link.attributes))
        body.append(b"\x35" + _pack_i(lflags))
        parts.append(_field(b"\x6a", b"".join(body)))
    dropped = span.dropped_links
    if dropped:
        parts.append(b"\x70" + _varint(dropped))
    status = span.status
    code = status.status_code.value if status is not None else 0
    if code:
        message = b""
        if status.description:
            message = _field(b"\x12", status.description.encode("utf-8", "surrogateescape"))
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


def encode_spans(spans: Iterable[Any]) -> bytes:
    """An ``ExportTraceServiceRequest``: spans grouped by resource, then by scope."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope
        by_scope = groups.get(id(resource))
        if by_scope is None:
            by_scope = groups[id(resource)] = (resource, {})
        entry = by_scope[1].get(id(scope))
        if entry is None:
            entry = by_scope[1][id(scope)] = (scope, [])
        entry[1].append(_field(b"\x12", _span(span)))
    out = []
    for resource, scopes in groups.values():
        body = [_resource(resource)]
        for scope, encoded in scopes.values():
            body.append(_field(b"\x12", _scope(scope) + b"".join(encoded)))
        if resource is not None and resource.schema_url:
            body.append(_field(b"\x1a", resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)
