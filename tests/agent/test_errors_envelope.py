"""A loopback stand-in for Sentry's envelope ingest endpoint, and checks of it against sentry-sdk.

Sentry cannot run on the test machines. sentry-sdk sends events as envelopes to
``POST /api/<project_id>/envelope/`` (https://develop.sentry.dev/sdk/data-model/envelopes/):
a JSON header line, then items, each an item-header JSON line (``type``, optional ``length`` in
bytes) followed by its payload, which runs for ``length`` bytes or, without a length, to the
next newline. :class:`SentryIngestStandIn` parses exactly that, checks the ``X-Sentry-Auth``
header carries the DSN's public key, and validates every ``event`` item's shape (32-hex
``event_id`` matching the envelope header, exception values with type and stack frames,
``contexts.trace`` ids as 32/16 lower-case hex). Anything off is answered 400 and kept in
``errors``. It stands in for Sentry's ingest (Relay); it is not Sentry.

The tests in this module run the real sentry-sdk in a subprocess against it, so the stand-in is
known to accept what the SDK really sends.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.support._server import BodyError, LoopbackHTTPServer, _QuietHandler, read_body

__all__ = ["EnvelopeError", "SentryIngestStandIn", "parse_envelope", "validate_event"]

_PATH = re.compile(r"^/api/(?P<project>\d+)/envelope/$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


class EnvelopeError(ValueError):
    """A body that does not follow the documented envelope or event shape."""


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Split an envelope into its header and its (item header, payload) pairs."""
    newline = body.find(b"\n")
    head, rest = (body, b"") if newline < 0 else (body[:newline], body[newline + 1:])
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise EnvelopeError(f"envelope header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise EnvelopeError("envelope header must be a JSON object")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        newline = rest.find(b"\n")
        if newline < 0:
            raise EnvelopeError("item header without a payload")
        try:
            item_header = json.loads(rest[:newline])
        except ValueError as exc:
            raise EnvelopeError(f"item header is not JSON: {exc}") from None
        if not isinstance(item_header, dict) or not isinstance(item_header.get("type"), str):
            raise EnvelopeError(f"item header needs a string 'type': {item_header!r}")
        rest = rest[newline + 1:]
        length = item_header.get("length")
        if length is not None:
            if not isinstance(length, int) or length < 0 or length > len(rest):
                raise EnvelopeError(f"item length {length!r} does not fit the body")
            payload, rest = rest[:length], rest[length:]
            if rest[:1] not in (b"", b"\n"):
                raise EnvelopeError("payload not followed by a newline")
            rest = rest[1:]
        else:
            newline = rest.find(b"\n")
            payload, rest = (rest, b"") if newline < 0 else (rest[:newline], rest[newline + 1:])
        items.append((item_header, payload))
    return header, items


def validate_event(event: Any, header: dict[str, Any]) -> dict[str, Any]:
    """Check an event payload's ids, exception frames and trace context; return it."""
    if not isinstance(event, dict):
        raise EnvelopeError("event payload must be a JSON object")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not _HEX32.match(event_id):
        raise EnvelopeError(f"event_id must be 32 lower-case hex, got {event_id!r}")
    if header.get("event_id") not in (None, event_id):
        raise EnvelopeError("envelope header event_id differs from the event's")
    for value in (event.get("exception") or {}).get("values") or []:
        if not isinstance(value.get("type"), str):
            raise EnvelopeError("exception value without a type")
        frames = (value.get("stacktrace") or {}).get("frames")
        if not isinstance(frames, list) or not frames:
            raise EnvelopeError(f"exception {value.get('type')} has no stack frames")
        for frame in frames:
            if not isinstance(frame.get("function"), str) or not (
                    frame.get("filename") or frame.get("abs_path") or frame.get("module")):
                raise EnvelopeError(f"frame without function/location: {frame!r}")
    trace_ctx = (event.get("contexts") or {}).get("trace")
    if trace_ctx is not None:
        if not _HEX32.match(str(trace_ctx.get("trace_id", ""))):
            raise EnvelopeError(f"contexts.trace.trace_id is not 32 hex: {trace_ctx!r}")
        if not _HEX16.match(str(trace_ctx.get("span_id", ""))):
            raise EnvelopeError(f"contexts.trace.span_id is not 16 hex: {trace_ctx!r}")
    return event


class SentryIngestStandIn(LoopbackHTTPServer):
    """Test stand-in for Sentry's envelope ingest endpoint (POST /api/<project>/envelope/).

    Not Sentry. ``dsn`` is the DSN to configure; events from valid envelopes appear in
    ``events()``, other item types (client reports, sessions) in ``items``.
    """

    def __init__(self, key: str = "publickey", project: str = "42") -> None:
        super().__init__()
        self.key = key
        self.project = project
        self._events: list[dict[str, Any]] = []
        self.items: list[tuple[dict[str, Any], bytes]] = []
        self.errors: list[str] = []

    def __enter__(self) -> SentryIngestStandIn:
        return super().__enter__()  # type: ignore[no-any-return]

    @property
    def dsn(self) -> str:
        return f"http://{self.key}@{self.host}:{self.port}/{self.project}"

    def handle_post(self, handler: _QuietHandler) -> None:
        match = _PATH.match(handler.path.split("?", 1)[0])
        if match is None or match["project"] != self.project:
            handler.send_plain(404, "not found\n")
            return
        auth = handler.headers.get("X-Sentry-Auth", "")
        query = handler.path.partition("?")[2]
        if f"sentry_key={self.key}" not in auth and f"sentry_key={self.key}" not in query:
            self._reject(handler, 401, f"missing sentry_key in X-Sentry-Auth: {auth!r}")
            return
        try:
            header, items = parse_envelope(read_body(handler))
            events = [validate_event(json.loads(payload), header)
                      for item_header, payload in items if item_header["type"] == "event"]
        except BodyError as exc:
            self._reject(handler, exc.status, exc.message)
            return
        except (EnvelopeError, ValueError) as exc:
            self._reject(handler, 400, str(exc))
            return
        with self.lock:
            self._events.extend(events)
            self.items.extend(i for i in items if i[0]["type"] != "event")
        handler.send_bytes(200, json.dumps({"id": header.get("event_id")}).encode(),
                           "application/json")

    def _reject(self, handler: _QuietHandler, status: int, message: str) -> None:
        with self.lock:
            self.errors.append(message)
        handler.send_plain(status, message + "\n")

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._events)

    def wait_for_events(self, predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
                        count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """Poll until ``count`` events match; raise AssertionError with what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [e for e in self.events() if predicate(e)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                got = [(e.get("exception") or {}).get("values", [{}])[-1].get("type")
                       for e in self.events()]
                raise AssertionError(f"expected >= {count} matching Sentry events within "
                                     f"{timeout}s, got {len(matching)}; received {got}; "
                                     f"errors={self.errors[:5]}")
            time.sleep(0.05)


def exception_types(event: dict[str, Any]) -> list[str]:
    return [v.get("type", "") for v in (event.get("exception") or {}).get("values") or []]


def frame_functions(event: dict[str, Any]) -> list[str]:
    return [f.get("function", "") for v in (event.get("exception") or {}).get("values") or []
            for f in (v.get("stacktrace") or {}).get("frames") or []]


# --------------------------------------------------------------------------- stand-in checks

_SDK_SCRIPT = """
import sys, sentry_sdk
sentry_sdk.init(dsn=sys.argv[1], default_integrations=False)
def failing_function():
    raise KeyError("missing")
try:
    failing_function()
except KeyError as exc:
    sentry_sdk.capture_exception(exc)
sentry_sdk.flush(5)
"""


def test_standin_accepts_what_sentry_sdk_sends() -> None:
    with SentryIngestStandIn() as ingest:
        subprocess.run([sys.executable, "-c", _SDK_SCRIPT, ingest.dsn], check=True, timeout=30)
        (event,) = ingest.wait_for_events()
        assert ingest.errors == []
    assert exception_types(event) == ["KeyError"]
    assert "failing_function" in frame_functions(event)
    assert _HEX32.match(event["contexts"]["trace"]["trace_id"])


def test_standin_rejects_a_bad_key() -> None:
    with SentryIngestStandIn() as ingest:
        bad = ingest.dsn.replace("publickey", "otherkey")
        subprocess.run([sys.executable, "-c", _SDK_SCRIPT, bad], check=True, timeout=30)
        from tests.support.waiting import wait_until

        wait_until(lambda: ingest.errors, timeout=10)
        assert ingest.events() == []
        assert "sentry_key" in ingest.errors[0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json\n", "envelope header is not JSON"),
        (b'{}\n{"length": 2}\n{}\n', "item header needs a string 'type'"),
        (b'{}\n{"type": "event", "length": 99}\n{}\n', "does not fit"),
        (b'{}\n{"type": "event"}\n{"event_id": "xyz"}\n', "event_id must be 32"),
        (b'{}\n{"type": "event"}\n{"event_id": "' + b"a" * 32 + b'", "exception": {"values": '
         b'[{"type": "E", "stacktrace": {"frames": []}}]}}\n', "has no stack frames"),
        (b'{}\n{"type": "event"}\n{"event_id": "' + b"a" * 32 + b'", "contexts": {"trace": '
         b'{"trace_id": "12", "span_id": "' + b"b" * 16 + b'"}}}\n', "trace_id is not 32 hex"),
    ],
)
def test_envelope_validation_refuses_malformed_bodies(body: bytes, problem: str) -> None:
    with pytest.raises(EnvelopeError, match=re.escape(problem)):
        header, items = parse_envelope(body)
        for item_header, payload in items:
            if item_header["type"] == "event":
                validate_event(json.loads(payload), header)


def test_envelope_items_with_and_without_length() -> None:
    body = (b'{"event_id": "' + b"c" * 32 + b'"}\n{"type": "attachment", "length": 3}\na\nb\n'
            b'{"type": "event"}\n{"event_id": "' + b"c" * 32 + b'"}')
    header, items = parse_envelope(body)
    assert header["event_id"] == "c" * 32
    assert [(h["type"], p) for h, p in items] == [
        ("attachment", b"a\nb"), ("event", b'{"event_id": "' + b"c" * 32 + b'"}')]
