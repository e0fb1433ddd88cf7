"""A loopback stand-in for Loki's push API that validates payloads against its docs.

Loki cannot run on the test machines. The agent's log shipper only relies on the JSON
push contract documented at
https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs, so the tests
run it against this receiver. Validation is deliberately strict: anything outside the
documented shape is answered 400 and kept in ``.errors``, so a shipper that passes here
sends what the documentation promises Loki accepts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._server import BodyError, LoopbackHTTPServer, _QuietHandler, read_body

__all__ = ["LABEL_NAME_RE", "LogEntry", "LokiReceiver", "PushError", "validate_push"]

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TS_RE = re.compile(r"^[0-9]+$")


@dataclass
class LogEntry:
    """One pushed log line with its stream labels and structured metadata."""

    labels: dict[str, str]
    ts_ns: int
    line: str
    metadata: dict[str, str]


class PushError(ValueError):
    """A push body that does not follow the documented shape."""


def _str_map(obj: Any, where: str, check_names: bool) -> dict[str, str]:
    if not isinstance(obj, dict):
        raise PushError(f"{where}: expected an object, got {type(obj).__name__}")
    for key, val in obj.items():
        if check_names and not LABEL_NAME_RE.match(key):
            raise PushError(f"{where}: invalid label name {key!r}")
        if not isinstance(val, str):
            raise PushError(f"{where}: value of {key!r} must be a string, got {val!r}")
    return dict(obj)


def validate_push(payload: Any) -> list[LogEntry]:
    """Validate a decoded push body and return its entries; raise ``PushError`` if invalid.

    Shape: ``{"streams": [{"stream": {label: str}, "values": [[ts, line(, metadata)]]}]}``
    with ``ts`` a decimal string of Unix epoch nanoseconds, ``line`` a string and the
    optional ``metadata`` an object of string values. Label names follow
    ``[a-zA-Z_][a-zA-Z0-9_]*`` and every stream needs at least one label.
    """
    if not isinstance(payload, dict):
        raise PushError("body must be a JSON object")
    extra = set(payload) - {"streams"}
    if "streams" not in payload:
        raise PushError('missing "streams"')
    if extra:
        raise PushError(f"unknown top-level keys {sorted(extra)}")
    streams = payload["streams"]
    if not isinstance(streams, list):
        raise PushError('"streams" must be an array')
    entries: list[LogEntry] = []
    for i, stream in enumerate(streams):
        where = f"streams[{i}]"
        if not isinstance(stream, dict):
            raise PushError(f"{where}: must be an object")
        if set(stream) != {"stream", "values"}:
            raise PushError(
                f'{where}: keys must be exactly "stream" and "values", got {sorted(stream)}'
            )
        labels = _str_map(stream["stream"], f"{where}.stream", check_names=True)
        if not labels:
            raise PushError(f"{where}.stream: at least one label is required")
        values = stream["values"]
        if not isinstance(values, list):
            raise PushError(f"{where}.values: must be an array")
        for j, value in enumerate(values):
            vwhere = f"{where}.values[{j}]"
            if not isinstance(value, list) or len(value) not in (2, 3):
                raise PushError(f"{vwhere}: must be [ts, line] or [ts, line, metadata]")
            ts, line = value[0], value[1]
            if not isinstance(ts, str) or not _TS_RE.match(ts):
                raise PushError(f"{vwhere}: timestamp must be a decimal string, got {ts!r}")
            if not isinstance(line, str):
                raise PushError(f"{vwhere}: log line must be a string, got {line!r}")
            metadata = (
                _str_map(value[2], f"{vwhere} metadata", check_names=False)
                if len(value) == 3
                else {}
            )
            entries.append(LogEntry(dict(labels), int(ts), line, metadata))
    return entries


class LokiReceiver(LoopbackHTTPServer):
    """Test stand-in for Loki's push API (POST /loki/api/v1/push). Not Loki.

    ``endpoint`` is the base URL to use as ``SPYGLASS_LOKI_URL``. Valid JSON pushes
    (optionally gzip) answer 204 and their entries appear in ``entries()``; anything else
    answers 400/415 with a message that is also kept in ``errors``. ``GET /ready`` answers
    200. Set ``fail_status`` (e.g. 503) to answer valid pushes with that status without
    storing them, and ``delay`` (seconds) to answer slowly.
    """

    PUSH_PATH = "/loki/api/v1/push"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._entries: list[LogEntry] = []
        self.errors: list[str] = []
        self.pushes = 0
        self.fail_status: int | None = None
        self.delay: float = 0.0

    def __enter__(self) -> LokiReceiver:
        return super().__enter__()  # type: ignore[no-any-return]

    def handle_get(self, handler: _QuietHandler) -> None:
        if handler.path.split("?", 1)[0] == "/ready":
            handler.send_plain(200, "ready\n")
        else:
            handler.send_plain(404, "not found\n")

    def handle_post(self, handler: _QuietHandler) -> None:
        if handler.path.split("?", 1)[0] != self.PUSH_PATH:
            handler.send_plain(404, "not found\n")
            return
        with self.lock:
            self.pushes += 1
        if self.delay:
            time.sleep(self.delay)
        try:
            body = read_body(handler)
        except BodyError as exc:
            self._reject(handler, exc.status, exc.message)
            return
        ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._reject(handler, 415, f"unsupported Content-Type {ctype!r}")
            return
        try:
            entries = validate_push(json.loads(body.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._reject(handler, 400, f"invalid JSON: {exc}")
            return
        except PushError as exc:
            self._reject(handler, 400, str(exc))
            return
        if self.fail_status is not None:
            handler.send_plain(self.fail_status, "configured failure\n")
            return
        with self.lock:
            self._entries.extend(entries)
        handler.send_plain(204)

    def _reject(self, handler: _QuietHandler, status: int, message: str) -> None:
        with self.lock:
            self.errors.append(message)
        handler.send_plain(status, message + "\n")

    def entries(self) -> list[LogEntry]:
        """All accepted entries so far, in arrival order."""
        with self.lock:
            return list(self._entries)

    def wait_for(
        self,
        predicate: Callable[[LogEntry], bool] = lambda e: True,
        count: int = 1,
        timeout: float = 15,
    ) -> list[LogEntry]:
        """Poll until at least ``count`` entries match ``predicate``; return all matches."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [e for e in self.entries() if predicate(e)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                got = self.entries()
                raise AssertionError(
                    f"expected >= {count} matching log entries within {timeout}s, got "
                    f"{len(matching)}; received {len(got)}: {got[:10]}; "
                    f"pushes={self.pushes}; errors={self.errors[:5]}"
                )
            time.sleep(0.05)

    def clear(self) -> None:
        """Forget accepted entries, errors and the push count."""
        with self.lock:
            self._entries.clear()
            self.errors.clear()
            self.pushes = 0
