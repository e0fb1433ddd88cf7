"""GC metrics: collections buffered by the gc callback reach the store exactly, in batches.

The request path writes the buffer at most once a second (or when it has grown); the export
threads' loop writes what is left when requests stop; a forced flush writes everything.
"""

from __future__ import annotations

import gc
import os

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tests.support.prom import parse, value
from tests.support.waiting import wait_until

from spyglass import metrics, runtime
from spyglass.export.batch import BatchWorker
from spyglass.metrics.collector import DirectoryCollector
from spyglass.metrics.store import ProcessStore


@pytest.fixture
def instruments(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    inst = metrics._make(ProcessStore(str(tmp_path)), 2000)
    monkeypatch.setattr(metrics, "_instruments", inst)
    gc.callbacks[:] = [cb for cb in gc.callbacks if cb is not runtime._callback]
    runtime._pending.clear()
    yield inst
    runtime._pending.clear()


def _scraped(directory: str) -> dict:  # type: ignore[type-arg]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DirectoryCollector(directory))
    return parse(generate_latest(registry).decode())


def _collections(tmp_path, generation: str) -> float:  # type: ignore[no-untyped-def]
    return value(_scraped(str(tmp_path)), "python_gc_collections_total", generation=generation)


def test_the_request_path_writes_gc_stats_in_batches(instruments, tmp_path):
    pauses = [0.0001, 0.0002, 0.003, 0.0004]
    for seconds in pauses:
        runtime._pending.append((0, seconds))
    runtime._pending.append((2, 0.02))
    runtime._flushed_at[0] = 0.0  # the last write was long ago
    runtime.flush_soon()
    assert not runtime._pending
    scraped = _scraped(str(tmp_path))
    assert value(scraped, "python_gc_collections_total", generation="0") == 4
    assert value(scraped, "python_gc_collections_total", generation="2") == 1
    assert value(scraped, "python_gc_duration_seconds_count", generation="0") == 4
    assert value(scraped, "python_gc_duration_seconds_sum", generation="0") == pytest.approx(
        sum(pauses))
    assert value(scraped, "python_gc_duration_seconds_bucket", generation="0",
                 le="0.0005") == 3
    assert value(scraped, "python_gc_duration_seconds_bucket", generation="0", le="0.005") == 4

    # Right after a write, the next requests leave a few new collections buffered...
    runtime._pending.append((0, 0.0001))
    runtime.flush_soon()
    assert runtime._pending and _collections(tmp_path, "0") == 4
    # ...until the buffer grows past the backlog limit, or the second has passed.
    runtime._pending.extend([(0, 0.0001)] * runtime.FLUSH_BACKLOG)
    runtime.flush_soon()
    assert not runtime._pending
    assert _collections(tmp_path, "0") == 5 + runtime.FLUSH_BACKLOG
    runtime._pending.append((1, 0.001))
    runtime.flush()  # forced: after a Celery task, at exit
    assert _collections(tmp_path, "1") == 1


def test_real_collections_are_counted_once_each(instruments, tmp_path):
    runtime.install()
    try:
        before = len(runtime._pending)
        for _ in range(5):
            gc.collect()
        assert len(runtime._pending) - before >= 5
        buffered = sum(1 for generation, _ in runtime._pending if generation == 2)
        runtime.flush()
        assert _collections(tmp_path, "2") == buffered >= 5
    finally:
        gc.callbacks[:] = [cb for cb in gc.callbacks if cb is not runtime._callback]


def test_the_export_loop_writes_what_requests_left(instruments, tmp_path):
    """No request follows the last collections: the exporters' loop writes them anyway."""
    runtime.install()
    gc.callbacks[:] = [cb for cb in gc.callbacks if cb is not runtime._callback]
    runtime._pending.append((0, 0.0001))
    runtime._flushed_at[0] = 1e18  # as if the request path had just written
    runtime.flush_soon()
    assert runtime._pending
    worker: BatchWorker[int] = BatchWorker("test", lambda batch: True, interval=0.05)
    worker.put(1)  # starts its thread, which wakes every interval
    try:
        wait_until(lambda: _collections(tmp_path, "0") == 1, timeout=5,
                   message="the export loop never wrote the GC buffer")
    finally:
        worker.shutdown(1.0)
    assert os.getpid() == instruments.store.pid
