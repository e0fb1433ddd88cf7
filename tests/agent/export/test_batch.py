"""BatchWorker backs off after a failed export: a down backend costs no encoding per batch; a
drain sends what was queued when it began, not until the queue is empty; the batch size
setting caps every upload of spans and of log lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import spyglass_argv

from spyglass.export.batch import BatchWorker


def test_failed_export_backs_off_and_flush_still_tries() -> None:
    calls: list[int] = []
    healthy = False

    def send(batch: list[int]) -> bool:
        calls.append(len(batch))
        if not healthy:
            raise ConnectionRefusedError("refused")
        return True

    worker: BatchWorker[int] = BatchWorker("test", send, max_queue=100, max_batch=4,
                                           interval=0.05)
    for i in range(4):
        worker.put(i)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [4]
    # Within the 1 s back-off, full batches are dropped without calling send.
    for i in range(8):
        worker.put(i)
    time.sleep(0.3)
    assert calls == [4]
    # A flush (exit, SIGTERM) tries the backend anyway.
    healthy = True
    for i in range(2):
        worker.put(i)
    assert worker.flush(2.0)
    assert calls[-1] == 2 and len(calls) == 2
    worker.shutdown(1.0)


def test_a_drain_sends_what_was_queued_when_it_began_and_stops() -> None:
    """Under steady load the request threads queue more items during every upload. A timer's
    drain used to run until the queue was empty, which under load it never was: it sent a
    stream of uploads of a few items each (hundreds a second in the overhead benchmark)."""
    calls: list[int] = []
    worker: BatchWorker[int] = BatchWorker("test", lambda batch: send(batch), max_queue=1000,
                                           max_batch=100, interval=3600.0)

    def send(batch: list[int]) -> bool:
        calls.append(len(batch))
        if len(calls) < 50:  # (bounded, so that the old behaviour fails instead of hanging)
            for i in range(3):
                worker.put(i)  # what the request threads queue while this upload runs
        return True

    for i in range(250):
        worker.put(i)
    worker._drain(deadline=None)  # what the export thread runs on each timer tick
    assert calls == [100, 100, 50]
    assert len(worker._queue) == 9  # queued during the uploads: left for the next tick

    # Woken by a full batch, it sends full batches only.
    calls.clear()
    for i in range(191):
        worker.put(i)
    worker._drain(deadline=None, full_only=True)
    assert calls == [100, 100]  # the second one filled up by what the first upload queued
    assert len(worker._queue) == 6

    # A flush (exit, SIGTERM) sends until the queue is empty: what the last requests queue
    # while it uploads is not lost.
    calls.clear()
    calls.extend([0] * 47)  # the next two uploads queue three items each, later ones none
    assert worker.flush(2.0)
    assert calls[47:] == [6, 3, 3] and not worker._queue
    worker.shutdown(1.0)


_SEVEN_SPANS_AND_LINES = """
import logging
from opentelemetry import trace
logging.basicConfig(level=logging.INFO)
tracer, log = trace.get_tracer("batch-test"), logging.getLogger("batch-test")
for i in range(7):
    with tracer.start_as_current_span(f"s{i}"):
        log.info("line %d", i)
"""


@pytest.mark.parametrize(("batch", "uploads"), [(None, [7]), ("3", [3, 3, 1])])
def test_export_batch_size_caps_every_upload(tmp_path: Path, batch: str | None,
                                             uploads: list[int]) -> None:
    """``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` is the most spans, and log lines, per upload: 7 of
    each go as 3 + 3 + 1 with a batch of 3, and as one upload with the default (2048)."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPYGLASS_"))}
    if batch is not None:
        env["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = batch
    with OTLPReceiver() as otlp, LokiReceiver() as loki:
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                    "SPYGLASS_LOKI_URL": loki.endpoint, "SPYGLASS_METRICS": "false"})
        result = subprocess.run(spyglass_argv(sys.executable, "-c", _SEVEN_SPANS_AND_LINES),
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        spans_per_upload = []
        for received in otlp.received:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(received.body)
            spans_per_upload.append(sum(len(ss.spans) for rs in request.resource_spans
                                        for ss in rs.scope_spans))
        assert sorted(spans_per_upload, reverse=True) == uploads, spans_per_upload
        assert len(loki.entries()) == 7, loki.errors
        assert loki.pushes == len(uploads), (loki.pushes, uploads)


_ONE_SPAN_THEN_WAIT = """
import logging, time
from opentelemetry import trace
logging.basicConfig(level=logging.INFO)
with trace.get_tracer("delay-test").start_as_current_span("one"):
    logging.getLogger("delay-test").info("one line")
time.sleep(5)
open("waited", "w").close()  # from here on the process exits, and its exit flush may send
"""


def test_export_delay_holds_a_partial_batch(tmp_path: Path) -> None:
    """``OTEL_BSP_SCHEDULE_DELAY`` is how long a partial batch may wait: at 60 s, one span and
    one log line stay queued while the process runs 5 s (the default, 2 s, would have sent
    them), and go out when it exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPYGLASS_"))}
    with OTLPReceiver() as otlp, LokiReceiver() as loki:
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "SPYGLASS_METRICS": "false",
                    "SPYGLASS_LOKI_URL": loki.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "60000"})
        proc = subprocess.Popen(spyglass_argv(sys.executable, "-c", _ONE_SPAN_THEN_WAIT),
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            # Until the script's 5 s are over (not until the process is gone: the exit flush
            # sends what was queued while the process is still exiting).
            while not (tmp_path / "waited").exists() and proc.poll() is None:
                assert not otlp.spans() and not loki.entries(), "a partial batch went early"
                time.sleep(0.1)
            assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        assert [s.name for s in otlp.spans()] == ["one"]
        assert len(loki.entries()) == 1, loki.errors
