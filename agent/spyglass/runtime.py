"""Garbage-collector metrics: collections and pause time per generation.

The ``gc.callbacks`` hook runs in the middle of whatever code triggered the collection, possibly
while that code holds the metric store's lock, so it only appends to a buffer. The buffer is
written out in one go (one counter add and one histogram update per generation) at most once a
second from the request path, by the export threads' loop when requests stop, and at exit:
a request triggers about one collection, and writing each one as it came cost the request
path two metric updates and two label lookups per collection.
"""

from __future__ import annotations

import atexit
import gc
import threading
import time
from typing import Final

from spyglass import forksafe, server
from spyglass import metrics as _metrics
from spyglass.export import batch

#: The request path writes buffered collections out at most this often...
FLUSH_INTERVAL: Final = 1.0
#: ...unless this many are waiting.
FLUSH_BACKLOG: Final = 64

_pending: Final[list[tuple[int, float]]] = []
_started: Final = [0.0]
_flushed_at: Final = [0.0]
_flush_lock = threading.Lock()


def _callback(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    elif len(_pending) < 10_000:
        _pending.append((int(info.get("generation", 0)), time.perf_counter() - _started[0]))


def flush() -> None:
    """Write every buffered collection now (after a Celery task, at exit)."""
    if not _pending or not _flush_lock.acquire(blocking=False):
        return  # nothing to write, or another thread is writing it
    try:
        _flushed_at[0] = time.monotonic()
        items = _pending[:]
        del _pending[: len(items)]  # the callback only appends: these are the first ones
        inst = _metrics.get()
        if inst is None:
            return
        by_generation: dict[int, list[float]] = {}
        for generation, seconds in items:
            by_generation.setdefault(generation, []).append(seconds)
        for generation, pauses in by_generation.items():
            gen = str(generation)
            inst.gc_collections.labels(gen).inc(len(pauses))
            inst.gc_duration.labels(gen).observe_many(pauses)
    finally:
        _flush_lock.release()


def flush_soon() -> None:
    """The after-request hook: write the buffer once a second, or when it has grown."""
    if _pending and (len(_pending) >= FLUSH_BACKLOG
                     or time.monotonic() - _flushed_at[0] >= FLUSH_INTERVAL):
        flush()


def _reset_after_fork() -> None:
    global _flush_lock
    _flush_lock = threading.Lock()


def install() -> None:
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)
    server.add_after_request(flush_soon)
    batch.add_tick(flush)
    forksafe.register_after_in_child(_reset_after_fork)
    atexit.register(flush)
