"""Ship the app's stdlib ``logging`` records to Loki's push API, with trace and span ids.

Why the push API (``POST /loki/api/v1/push``, JSON) and not OTLP to Loki's ``/otlp``: it is
available on every Loki since 2.0 without enabling anything, it lets us keep stream labels to
exactly three low-cardinality ones (``service_name``, ``environment``, ``level``), and it carries
per-line structured metadata (trace_id, span_id) on Loki 3. The line itself is logfmt with the
trace id too, so Grafana's derived field links it to Jaeger on any Loki version.

Records are caught by :mod:`spyglass.logs.tap` (a wrapper of ``Logger.callHandlers``, never a
root handler, so ``logging.basicConfig()`` keeps working and the app's console output is
unchanged).

Each entry is rendered to its final JSON (``["<ts>", "<line>", {metadata}]``) by the thread
that logged it, while the record is still in that core's cache; the export thread only joins
the entries of a batch into the push body. Serialising a batch of queued entries in the export
thread cost several times more CPU (benchmarks/RESULTS.md, session 4), as for spans
(:mod:`spyglass.export.otlp`); session 18, compiled, found the move saved nothing in all.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from spyglass import forksafe
from spyglass.config import Config
from spyglass.export.batch import BatchWorker
from spyglass.export.http import Poster
from spyglass.logs import tap
from spyglass.spans import context_fields, current_span, span_context

__all__ = ["LokiPusher", "install"]

_SKIP_LOGGERS: Final = ("spyglass", "opentelemetry", "urllib3.connectionpool")
_LEVELS: Final = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
                  logging.ERROR: "error", logging.CRITICAL: "critical"}
_MAX_LINE: Final = 16 * 1024

Entry = tuple[str, str]  # level, the entry's JSON: ["<ts ns>", "<line>"(, {metadata})]
_quote: Final = json.encoder.encode_basestring_ascii


def _level_name(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


_BARE: Final = re.compile(r"[\w\-./:@]+", re.ASCII)


#: What ``json.dumps(s, ensure_ascii=False)`` returns for a str, without building a
#: JSONEncoder per call (that was about 20,000 instructions of every log line).
_quote_text: Final = json.encoder.encode_basestring


def _logfmt_value(value: str) -> str:
    """The value bare when it is a plain token, else JSON-quoted (one regex, not a char loop)."""
    if _BARE.fullmatch(value):
        return value
    return _quote_text(value)


#: ``level=... logger=...`` by logger name and level, already escaped for the JSON string it
#: goes in: a service logs from a few loggers, and the name's logfmt quoting (a regex match),
#: its JSON escaping and the f-string are then done once.
_HEADS: Final[dict[str, dict[str, str]]] = {}


def _json_inner(text: str) -> str:
    """``text`` escaped as inside a JSON string (ASCII only), without the quotes. Escaping is
    per character, so the escaped parts of a line joined are the escaped line."""
    return _quote(text)[1:-1]


def _message_value(message: str) -> str:
    """``msg=``'s logfmt value, escaped for the JSON string of the line.

    The usual message -- printable ASCII with a space and no quote or backslash -- is quoted
    in logfmt and needs no JSON escaping but of those two quotes: written directly, without
    the bare-token regex and two escaping passes (about 4,000 instructions a line)."""
    if (message.isascii() and " " in message and '"' not in message
            and "\\" not in message and message.isprintable()):
        return '\\"' + message + '\\"'
    return _json_inner(_logfmt_value(message))


def _hex_ids(trace_id: Any, span_id: Any) -> tuple[str, str]:
    """The ids as 32 and 16 lower-case hex digits. ``to_bytes().hex()`` takes about half
    the time of ``format(id, "032x")`` (a format-spec parse per call); an id out of range
    (a foreign span context) raises there and is formatted as before."""
    try:
        return trace_id.to_bytes(16, "big").hex(), span_id.to_bytes(8, "big").hex()
    except (OverflowError, AttributeError, TypeError):
        return format(trace_id, "032x"), format(span_id, "016x")


def _head(level: str, name: str) -> str:
    by_level = _HEADS.get(name)
    head = by_level.get(level) if by_level is not None else None
    if head is None:
        head = _json_inner(f"level={level} logger={_logfmt_value(name)}")
        if by_level is None:
            if len(_HEADS) >= 1024:
                _HEADS.clear()
            by_level = _HEADS[name] = {}
        by_level[level] = head
    return head


class LokiPusher:
    """Formats records on the calling thread (cheaply) and pushes batches from a worker."""

    def __init__(self, config: Config) -> None:
        self._labels = {"service_name": config.service_name, "environment": config.environment}
        # Kept open between pushes; gzip level 1 (about 5x smaller JSON for a fraction of
        # level 9's CPU, which is the app's CPU).
        self._poster = Poster(config.loki_push_url, config.export_timeout,
                              headers={"User-Agent": "spyglass"}, compression="gzip")
        self.worker: BatchWorker[Entry] = BatchWorker("logs", self.send,
                                                      max_queue=config.max_queue_size,
                                                      max_batch=config.export_batch_size,
                                                      interval=config.export_delay / 1000)

    def record(self, record: logging.LogRecord) -> None:
        # The app's handlers ran first (logs.tap), and a Formatter among them left the
        # formatted message on the record: logging's own cache, reused rather than formatting
        # the message a second time (an interpreted getMessage call per line).
        message = record.__dict__.get("message")
        if type(message) is not str:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is the app's bug, not ours
                message = str(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            import traceback

            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
        level = _level_name(record.levelno)
        # The line is JSON-escaped in parts: the head comes escaped from its cache, the ids
        # are hex, and only the message is escaped here (the whole line was, before: a
        # character loop over the head and ids of every line).
        head = _head(level, record.name)
        msg = _message_value(message[:_MAX_LINE])
        ts = int(record.created * 1e9)
        fields = context_fields(span_context(current_span()))
        if fields[5]:  # valid
            tid, sid = _hex_ids(fields[0], fields[1])
            entry = (f'["{ts}","{head} trace_id={tid} span_id={sid} msg={msg}",'
                     f'{{"trace_id":"{tid}","span_id":"{sid}"}}]')
        else:
            entry = f'["{ts}","{head} msg={msg}"]'
        self.worker.put((level, entry))

    def payload(self, batch: Sequence[Entry]) -> bytes:
        """The push body: one stream per level, entries in the order they were logged."""
        streams: dict[str, list[str]] = {}
        for level, entry in batch:
            values = streams.get(level)
            if values is None:
                values = streams[level] = []
            values.append(entry)
        body = ",".join(
            f'{{"stream":{json.dumps({**self._labels, "level": level})},'
            f'"values":[{",".join(values)}]}}' for level, values in streams.items())
        return f'{{"streams":[{body}]}}'.encode()

    def send(self, batch: Sequence[Entry]) -> bool:
        self._poster.post(self.payload(batch), "application/json")
        return True


_pusher: LokiPusher | None = None
_get_ident: Final = threading.get_ident
#: The thread that started the agent (the main thread; after a fork, the forking one, which
#: is the child's main thread). It is never one of the agent's ``spyglass-*`` threads, so
#: records from it skip the ``current_thread().name`` check (two interpreted calls a line).
_main_ident: Final = [threading.get_ident()]


def _reset_main_ident() -> None:
    _main_ident[0] = threading.get_ident()


forksafe.register_after_in_child(_reset_main_ident)


def install(config: Config) -> LokiPusher:
    """Start shipping records at ``config.log_level`` and above; safe to call once."""
    global _pusher
    pusher = _pusher = LokiPusher(config)
    threshold = logging.getLevelName(config.log_level.upper())

    def consume(record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIP_LOGGERS) or (
                _get_ident() != _main_ident[0]
                and threading.current_thread().name.startswith("spyglass-")):
            return
        pusher.record(record)

    tap.add_consumer(threshold, consume)
    _hook_uncaught(pusher)
    import atexit

    atexit.register(pusher.worker.flush, 3.0)
    return pusher


def _hook_uncaught(pusher: LokiPusher) -> None:
    """Uncaught exceptions (main thread and other threads) reach Loki too."""
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        try:
            record = logging.LogRecord("uncaught", logging.CRITICAL, "", 0,
                                       "Uncaught exception", None, (exc_type, exc, tb))
            record.created = time.time()
            pusher.record(record)
            pusher.worker.flush(2.0)
        except Exception:  # noqa: BLE001
            pass
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    previous_thread_hook = threading.excepthook

    def thread_hook(args):
        try:
            if args.exc_type is not SystemExit:
                record = logging.LogRecord("uncaught", logging.ERROR, "", 0,
                                           "Uncaught exception in thread %s",
                                           (getattr(args.thread, "name", "?"),),
                                           (args.exc_type, args.exc_value, args.exc_traceback))
                pusher.record(record)
        except Exception:  # noqa: BLE001
            pass
        previous_thread_hook(args)

    threading.excepthook = thread_hook


def flush(timeout: float = 3.0) -> None:
    if _pusher is not None:
        _pusher.worker.flush(timeout)
