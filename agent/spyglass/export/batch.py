"""A bounded queue drained by one background thread, shared by the span and log exporters.

The request path only appends to a ``deque``; it never blocks, never does I/O and never
raises. When the queue is full the item is dropped and counted (``spyglass_dropped_total``
with reason ``queue_full``). The worker sends full batches as soon as they are full, and what
is left every ``interval`` seconds: never "whatever arrived while the last send ran", which under
load degenerates into many tiny uploads whose fixed cost (encoding, HTTP, the GIL) dominates.
A failed send drops the batch, counts it, and logs one warning per five minutes; after a
failure the worker backs off (1 s, doubling to 8 s) and drops batches without sending them
until the next try, so a backend that is down costs the app no HTTP work and no waiting. The
thread starts lazily on the first item and again after a fork, since threads do not survive a
fork.

Items arrive already encoded (a span's protobuf bytes, a log entry's JSON), by the thread that
made them: work done here holds the GIL while the request thread waits for it, and reading
items another core just wrote costs this thread several times what writing them cost there
(``spyglass.export.otlp``; benchmarks/RESULTS.md). What is left here is joining, compression
(zlib releases the GIL) and the upload. Batches of up to 2048 by default, four times the
SDK's 512 (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``): each upload has a fixed cost (an HTTP round
trip, ``http.client``'s header parsing, the export thread's wake-up), and most of it falls on
the request thread, not the export thread (benchmarks/RESULTS.md, session 12), so fewer,
larger uploads cost the app less CPU.

Why our own and not the SDK's ``BatchSpanProcessor``: it exposes no drop counts, and the same
loop serves the Loki exporter, which the SDK has no equivalent for.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from spyglass import forksafe
from spyglass import metrics as _metrics
from spyglass._log import get_logger, warn_once_per

__all__ = ["BatchWorker"]

#: Longest a flush waits once the backend has failed (refused, errored or hung): at exit the
#: app must not wait the full timeout per signal and per process on a backend that is down.
FAILING_FLUSH_TIMEOUT = 0.5
#: Longest wait between tries while the backend keeps failing.
MAX_BACKOFF = 8.0

T = TypeVar("T")

#: Called by every worker's loop on each wake (at least every ``interval``), off the request
#: path: work that must happen even when requests stop (``spyglass.runtime``'s GC buffer).
_ticks: list[Callable[[], None]] = []


def add_tick(hook: Callable[[], None]) -> None:
    if hook not in _ticks:
        _ticks.append(hook)


class BatchWorker(Generic[T]):
    """Queue items from any thread; ``send`` batches of them from one daemon thread."""

    def __init__(self, signal: str, send: Callable[[Sequence[T]], bool], max_queue: int = 2048,
                 max_batch: int = 512, interval: float = 2.0) -> None:
        self.signal = signal
        self._send = send
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._interval = interval
        self._wake_at = max(1, max_batch)
        self._init_state()
        forksafe.register_after_in_child(self._init_state)

    def _init_state(self) -> None:
        self._queue: collections.deque[T] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._sender: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopped = False
        self._flush_lock = threading.Lock()
        self._failing = False  # the last export (or flush) failed or timed out
        self._backoff = 0.0
        self._retry_at = 0.0

    def put(self, item: T) -> None:
        """Never blocks, never raises: the request path calls this."""
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._count("dropped", reason="queue_full")
            return
        queue.append(item)
        if self._sender is None:
            self._start()
        if len(queue) >= self._wake_at:
            self._wake.set()

    def _start(self) -> None:
        if self._stopped:
            return
        thread = threading.Thread(target=self._run, name=f"spyglass-{self.signal}", daemon=True)
        self._sender = thread
        thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic() + self._interval
        while not self._stopped:
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
            now = time.monotonic()
            if now >= next_tick:
                self._drain(deadline=None)
                next_tick = now + self._interval
            else:
                self._drain(deadline=None, full_only=True)
            for tick in _ticks:
                try:
                    tick()
                except Exception:  # noqa: BLE001
                    get_logger().debug("export tick failed", exc_info=True)

    def _drain(self, deadline: float | None, full_only: bool = False) -> None:
        """Send full batches only (woken by a full batch), everything queued when the drain
        began (a timer tick), or everything until the queue is empty or ``deadline`` passes
        (a flush: at exit nothing more arrives, and what does must not be lost).

        A timer tick does not run until the queue is empty: under steady load the request
        threads queue a few items during every upload, so such a drain never ended, and sent
        a stream of uploads of a few items each, hundreds a second, each costing about as much
        as a full one (benchmarks/RESULTS.md, session 14). What arrives during a tick's drain
        waits for a full batch or the next tick."""
        with self._flush_lock:
            queue = self._queue
            max_batch = self._max_batch
            budget = len(queue) if deadline is None and not full_only else -1
            while queue and (len(queue) >= max_batch or not full_only) and budget != 0:
                if deadline is not None and time.monotonic() > deadline:
                    return
                size = max_batch if budget < 0 else min(max_batch, budget)
                batch: list[T] = []
                while queue and len(batch) < size:
                    batch.append(queue.popleft())
                if budget > 0:
                    budget -= len(batch)
                # A flush (deadline set) tries the backend even while backing off.
                self._export(batch, backoff=deadline is None)
            self._gauge()

    def _export(self, batch: list[T], backoff: bool = True) -> None:
        if backoff and self._failing and time.monotonic() < self._retry_at:
            self._count("dropped", reason="export_failed", amount=len(batch))
            return
        try:
            ok = self._send(batch)
        except Exception as exc:  # noqa: BLE001
            ok = False
            get_logger().debug("%s export raised", self.signal, exc_info=True)
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "the backend refused or did not answer in time"
        if ok:
            self._failing = False
            self._backoff = 0.0
            self._count("exported", amount=len(batch))
            return
        self._failing = True
        self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 1.0)
        self._retry_at = time.monotonic() + self._backoff
        self._count("dropped", reason="export_failed", amount=len(batch))
        self._count("export_errors")
        warn_once_per(f"export-{self.signal}",
                      "cannot export %s (%s); dropping them until the backend is back. "
                      "Further failures are counted in spyglass_dropped_total.",
                      self.signal, reason)

    def _gauge(self) -> None:
        inst = _metrics.get()
        if inst is not None:
            try:
                inst.queue_size.labels(self.signal).set(len(self._queue))
            except Exception:  # noqa: BLE001
                pass

    def _count(self, what: str, reason: str = "", amount: float = 1) -> None:
        inst = _metrics.get()
        if inst is None:
            return
        try:
            if what == "dropped":
                inst.dropped.labels(self.signal, reason).inc(amount)
            elif what == "exported":
                inst.exported.labels(self.signal).inc(amount)
            else:
                inst.export_errors.labels(self.signal).inc(amount)
        except Exception:  # noqa: BLE001
            pass

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued, giving up after ``timeout`` seconds (used at exit).

        The sending happens in a helper thread joined with a timeout, so a backend that
        accepts and never answers delays the app's exit by ``timeout`` at most, and by
        ``FAILING_FLUSH_TIMEOUT`` once an export has failed: gunicorn's master and worker each
        flush traces and logs, and a hung backend used to add the full timeout four times over.
        """
        if os.getpid() != self._pid:
            return True
        # An empty queue is not enough: the worker may be sending a batch it already took, and
        # an exiting process (a recycled gunicorn worker) would cut that send short.
        if not self._queue and not self._flush_lock.locked():
            return True
        if self._failing:
            timeout = min(timeout, FAILING_FLUSH_TIMEOUT)
        deadline = time.monotonic() + timeout
        helper = threading.Thread(target=self._drain, args=(deadline,), daemon=True,
                                  name=f"spyglass-{self.signal}-flush")
        helper.start()
        helper.join(timeout)
        if helper.is_alive():
            self._failing = True  # the backend hangs: later flushes must not wait again
            return False
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        if os.getpid() != self._pid:
            return
        self.flush(timeout)
        left = len(self._queue)
        if left:
            self._count("dropped", reason="shutdown", amount=left)
            self._queue.clear()
        self._stopped = True
        self._wake.set()
