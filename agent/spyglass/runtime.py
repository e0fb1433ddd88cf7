"""Garbage-collector metrics: collections and pause time per generation.

The ``gc.callbacks`` hook runs in the middle of whatever code triggered the collection, possibly
while that code holds the metric store's lock, so it only appends to a buffer; the buffer is
written out after each request and at exit.
"""

from __future__ import annotations

import atexit
import gc
import time

from spyglass import metrics as _metrics
from spyglass import server

_pending: list[tuple[int, float]] = []
_started = [0.0]


def _callback(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    elif len(_pending) < 10_000:
        _pending.append((int(info.get("generation", 0)), time.perf_counter() - _started[0]))


def flush() -> None:
    if not _pending:
        return
    inst = _metrics.get()
    items = _pending[:]
    del _pending[: len(items)]
    if inst is None:
        return
    for generation, seconds in items:
        gen = str(generation)
        inst.gc_collections.labels(gen).inc()
        inst.gc_duration.labels(gen).observe(seconds)


def install() -> None:
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)
    server.add_after_request(flush)
    atexit.register(flush)
