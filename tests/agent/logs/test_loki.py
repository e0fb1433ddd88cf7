"""The Loki shipper's per-record work: the message it reuses, and the records it skips.

``LokiPusher.record`` reuses the message a Formatter of the app's own handlers already left on
the record (logging's cache) instead of formatting it again, and the consumer skips records
from the agent's ``spyglass-*`` threads without asking the main thread for its name, also in
a forked child. Each behaviour is checked against what a second ``getMessage`` or a thread-name
check would have produced, so a regression in either direction fails.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spyglass.config import load_config
from spyglass.export.batch import BatchWorker
from spyglass.logs.loki import LokiPusher


class _Collect:
    """A real worker (its class is compiled, so a stand-in object cannot take its place) whose
    batches land here; ``items`` flushes it first."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.worker: BatchWorker[Any] = BatchWorker("logs", self._send, max_queue=1000,
                                                    max_batch=1000, interval=3600.0)

    def _send(self, batch: Sequence[Any]) -> bool:
        self.sent.extend(batch)
        return True

    @property
    def items(self) -> list[Any]:
        assert self.worker.flush(2.0)
        return self.sent


class _CountingRecord(logging.LogRecord):
    calls = 0

    def getMessage(self) -> str:
        type(self).calls += 1
        return super().getMessage()


def _pusher(tmp_path: Path) -> tuple[LokiPusher, _Collect]:
    config = load_config(environ={"SPYGLASS_LOKI_URL": "http://127.0.0.1:9"}, cwd=tmp_path)
    pusher = LokiPusher(config)
    sink = _Collect()
    pusher.worker = sink.worker
    return pusher, sink


def _line(item: Any) -> str:
    return str(json.loads(item[1])[1])


def test_a_formatted_record_is_not_formatted_again(tmp_path: Path) -> None:
    pusher, sink = _pusher(tmp_path)
    record = _CountingRecord("app", logging.INFO, __file__, 1, "order %s placed", (42,), None)
    logging.Formatter("%(levelname)s %(message)s").format(record)  # what the app's handler did
    _CountingRecord.calls = 0
    pusher.record(record)
    assert _CountingRecord.calls == 0
    assert _line(sink.items[0]).endswith('msg="order 42 placed"')


def test_an_unformatted_record_is_formatted_here(tmp_path: Path) -> None:
    pusher, sink = _pusher(tmp_path)
    record = _CountingRecord("app", logging.INFO, __file__, 1, "order %s placed", (43,), None)
    _CountingRecord.calls = 0
    pusher.record(record)
    assert _CountingRecord.calls == 1
    assert _line(sink.items[0]).endswith('msg="order 43 placed"')
    # A bad format string is the app's bug: the raw message is shipped, nothing raises.
    bad = logging.LogRecord("app", logging.INFO, __file__, 1, "needs %d", ("x",), None)
    pusher.record(bad)
    assert _line(sink.items[1]).endswith('msg="needs %d"')


_HOSTILE = ['plain', 'say "hi"', 'back\\slash', 'tab\tnew\nline\r', 'ctl \x00\x1f\x7f',
            'caf\u00e9 \u2028 \U0001f600', 'lone \udc80 surrogate', '%s', '=', '']


def test_each_line_is_the_whole_line_escaped(tmp_path: Path) -> None:
    """The line is JSON-escaped in parts (cached head, hex ids, message); whatever a logger
    name or message holds, the entry decodes to the logfmt line, inside a span and out."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

    from spyglass.logs.loki import _logfmt_value

    pusher, sink = _pusher(tmp_path)
    ctx = SpanContext(0xABC, 0xDEF, False, TraceFlags(1))
    expected = []
    for name in ["app", 'we"ird logger', "caf\u00e9.\U0001f600"]:
        for message in _HOSTILE:
            record = logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)
            record.message = message
            head = f"level=warning logger={_logfmt_value(name)}"
            pusher.record(record)
            expected.append([str(int(record.created * 1e9)),
                             f"{head} msg={_logfmt_value(message)}"])
            with use_span(NonRecordingSpan(ctx)):
                pusher.record(record)
            tid, sid = f"{0xABC:032x}", f"{0xDEF:016x}"
            expected.append([str(int(record.created * 1e9)),
                             f"{head} trace_id={tid} span_id={sid} msg={_logfmt_value(message)}",
                             {"trace_id": tid, "span_id": sid}])
    entries = [item[1] for item in sink.items]
    assert [json.loads(entry) for entry in entries] == expected
    # ASCII on the wire, as json.dumps(ensure_ascii=True) writes it: the same bytes.
    assert entries == [json.dumps(e, separators=(",", ":")) for e in expected]


_THREADS_SCRIPT = textwrap.dedent("""
    import json, logging, os, sys, threading
    from spyglass.config import load_config
    from spyglass.logs import loki

    pusher = loki.install(load_config(environ={"SPYGLASS_LOKI_URL": "http://127.0.0.1:9"}))
    shipped = []
    name_checks = [0]
    real_current_thread = threading.current_thread

    def counting_current_thread():
        name_checks[0] += 1
        return real_current_thread()

    threading.current_thread = counting_current_thread

    from spyglass.export.batch import BatchWorker

    def collect(batch):
        shipped.extend(json.loads(item[1])[1].rsplit("msg=", 1)[1].strip('"')
                       for item in batch)
        return True

    # A real worker (its class is compiled: no stand-in object can take its place), sending
    # only when flushed; primed so that its thread has started before anything is counted.
    pusher.worker = BatchWorker("logs", collect, max_queue=1000, max_batch=1000,
                                interval=3600.0)
    pusher.worker.put(("info", '["0","msg=primed"]'))
    pusher.worker.flush(2.0)
    shipped.clear()
    log = logging.getLogger("app")
    log.setLevel(logging.DEBUG)

    def in_thread(name, target, *args):
        t = threading.Thread(target=target, args=args, name=name)
        t.start()
        t.join()

    def emit(tag):
        # Records below the shipping level (INFO) never reach the shipper: what logging's own
        # LogRecord costs in current_thread() calls is the baseline.
        name_checks[0] = 0
        log.debug("not shipped " + tag)
        baseline = name_checks[0]
        name_checks[0] = 0
        log.info("main " + tag)
        checks_on_main = name_checks[0] - baseline
        in_thread("worker-1", log.info, "app thread " + tag)
        in_thread("spyglass-traces", log.info, "agent thread " + tag)
        return checks_on_main

    def fork_here():
        # Forked from a thread that is not the main one: in the child it becomes the main
        # thread, which the shipper must learn (forksafe) to keep its fast path.
        pid = os.fork()
        if pid == 0:
            shipped.clear()
            checks = emit("child")
            pusher.worker.flush(2.0)
            print(json.dumps([shipped, checks]))
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)

    checks = emit("parent")
    pusher.worker.flush(2.0)
    parent = list(shipped)
    in_thread("forker", fork_here)
    print(json.dumps([parent, checks]))
""")


def test_agent_threads_are_skipped_in_parent_and_forked_child() -> None:
    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    (child, child_checks), (parent, parent_checks) = json.loads(out[0]), json.loads(out[1])
    assert parent == ["main parent", "app thread parent"]
    assert child == ["main child", "app thread child"]
    # The main thread's records skip the thread-name check, also in a child forked from
    # another thread (whose main thread is that one).
    assert parent_checks == 0
    assert child_checks == 0


def test_ids_are_hex_as_format_writes_them() -> None:
    """In range, ids become 32 and 16 hex digits without ``format``; out of range (a foreign
    span context's), exactly what ``format`` wrote before."""
    from spyglass.logs.loki import _hex_ids

    for trace_id, span_id in [(1, 1), (0xABC, 0xDEF), (2**128 - 1, 2**64 - 1), (2**130, 7),
                              (5, 2**64), (-1, 3)]:
        assert _hex_ids(trace_id, span_id) == (format(trace_id, "032x"),
                                               format(span_id, "016x"))


def test_the_usual_message_takes_the_short_path_to_the_same_value() -> None:
    """``_message_value`` writes the common message (printable ASCII, a space, no quote or
    backslash) directly; every message, common or not, gets what the general path gives."""
    import random
    import string

    from spyglass.logs.loki import _json_inner, _logfmt_value, _message_value

    fixed = ["work done for item 7", "a/b c", " ", "trailing ", "k=v x=y", "100% done",
             "tab\there", "x\x7fy z", 'say "hi" now', "back\\slash x", "caf\u00e9 au lait",
             "line\u2028sep x", "", "single", "user@host:/path", "{json: 1} [x]", "<a href>"]
    rng = random.Random(5)
    alphabet = string.printable + "\u00e9\u2028\U0001f600\x00\x1f"
    randoms = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
               for _ in range(2000)]
    for message in fixed + randoms:
        assert _message_value(message) == _json_inner(_logfmt_value(message)), repr(message)
