"""Slow-request and stuck-worker watchdog: py-spy stacks attached to the request's span.

Per request the server calls :meth:`Watchdog.start` (in the request's thread, as the request
begins) and :meth:`Watchdog.stop` (as it finishes). Those cost one dict insert, one dict delete
and a counter increment (about 0.5 µs together): no clock read, thread, timer or signal per
request; the watchdog thread notices progress by the counter changing (a lost increment between
two threads cannot hide progress: any change counts). One daemon thread per process (started
lazily at the first request, restarted lazily in a forked worker) wakes a few times per threshold
and looks at the requests in flight:

- **Slow request**: one running longer than the threshold gets the stack of its thread (matched
  by ``threading.get_ident()``, which py-spy reports as ``thread_id``) from
  ``py-spy dump --json --nonblocking --pid <own pid>``, run as a subprocess from the watchdog
  thread (``--nonblocking``: the app is not paused while py-spy reads it). The stack goes on the
  request's span as an event named ``spyglass.slow_request`` (attribute ``code.stacktrace``, the
  OTel semantic-convention name, plus ``thread.id``/``thread.name``) and is logged at WARNING
  through the ``profiling.watchdog`` logger with the span current, so the Loki line carries the
  request's trace id. Each request is captured at most once; one dump serves every request that
  is slow at that moment; dumps are rate-limited per process (one per ``min_interval`` seconds,
  default 10). A request still running after a rate-limited pause is captured at the next dump.
- **Stuck worker**: requests in flight and none finished for ``stuck_seconds`` -> every
  thread's stack is logged once (with the oldest request's trace id); a finished request ends
  the episode.

Why the ``profiling.watchdog`` logger and a thread not named ``spyglass-*``: the agent's own
``spyglass`` logger never ships (it would feed back into exporters), and the Loki shipper skips
records from ``spyglass-*`` threads for the same reason; these records are about the app, so they
go where the app's logs go. For an async app the request's thread is the event loop's, so the
stack shows what blocks the loop (an awaiting coroutine leaves the loop in its selector).

When py-spy cannot attach (no ptrace permission) or is missing, one message on the agent's
logger says how to fix it and the watchdog stops capturing in that process; the app carries on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from opentelemetry import trace

from spyglass import forksafe
from spyglass._log import get_logger
from spyglass.profiling import pyspy

__all__ = ["EVENT_NAME", "LOGGER_NAME", "Watchdog"]

EVENT_NAME = "spyglass.slow_request"
LOGGER_NAME = "profiling.watchdog"
_MAX_STACK = 16 * 1024
_get_ident = threading.get_ident


class Watchdog:
    """In-flight request registry plus one lazily started checking thread per process."""

    def __init__(self, threshold: float = 5.0, stuck_seconds: float = 20.0,
                 min_interval: float = 10.0, check_interval: float | None = None) -> None:
        self.threshold = threshold
        self.stuck_seconds = stuck_seconds
        self.min_interval = min_interval
        shortest = min(s for s in (threshold, stuck_seconds) if s > 0) if (
            threshold > 0 or stuck_seconds > 0) else 1.0
        self.check_interval = check_interval or min(1.0, max(0.05, shortest / 5))
        self.log = logging.getLogger(LOGGER_NAME)
        self.captures = 0  # dumps taken (for tests and debugging)
        self._inflight: dict[int, tuple[Any, int]] = {}
        self._captured: set[int] = set()
        self._finished = 0  # requests finished; the thread compares it with what it last saw
        self._seen_finished = 0
        self._last_finish = time.perf_counter()  # when the thread saw the counter move
        self._stuck_reported = False
        self._next_dump = 0.0
        self._disabled = False
        self._running = False
        self._wake = threading.Event()
        self._report_active: Any = None
        forksafe.register_after_in_child(self._after_fork)

    def report_active(self, setter: Any) -> None:
        """Call ``setter(n)`` with the number of requests in flight at every check (at most
        ``check_interval`` apart, 1 s by default), so the request path need not write the
        in-flight gauge twice per request; it goes on after captures are switched off."""
        self._report_active = setter

    # ------------------------------------------------------------------ per request (hot)

    def start(self, state: Any) -> None:
        """A request began in the calling thread (``state.start`` is its perf_counter)."""
        self._inflight[id(state)] = (state, _get_ident())
        if not self._running:
            self._ensure_thread()

    def stop(self, state: Any) -> None:
        """The request finished (called once, from any thread)."""
        if self._inflight.pop(id(state), None) is not None:
            self._finished += 1

    # ------------------------------------------------------------------ the thread

    def _ensure_thread(self) -> None:
        if self._running or (self._disabled and self._report_active is None):
            return
        self._running = True
        self._wake = threading.Event()
        # Not "spyglass-*": the Loki shipper drops records from threads named so.
        thread = threading.Thread(target=self._loop, name="slow-request-watchdog", daemon=True)
        thread.start()

    def _after_fork(self) -> None:
        """A forked worker starts with no requests and no thread (threads do not survive)."""
        self._inflight = {}
        self._captured = set()
        self._finished = self._seen_finished = 0
        self._last_finish = time.perf_counter()
        self._stuck_reported = False
        self._next_dump = 0.0
        self._running = False

    def _loop(self) -> None:
        wake = self._wake
        while not wake.wait(self.check_interval):
            report = self._report_active
            if report is not None:
                try:
                    report(len(self._inflight))
                except Exception:  # noqa: BLE001
                    get_logger().debug("in-flight gauge failed", exc_info=True)
            if self._disabled:
                if report is None:
                    break
                continue
            try:
                self.check()
            except Exception:  # noqa: BLE001
                get_logger().debug("watchdog check failed", exc_info=True)
        self._running = False

    def check(self, now: float | None = None) -> None:
        """One pass over the requests in flight (the thread calls this periodically)."""
        now = time.perf_counter() if now is None else now
        finished = self._finished
        if finished != self._seen_finished:  # progress since the last pass
            self._seen_finished = finished
            self._last_finish = now
            self._stuck_reported = False
        inflight = self._inflight.copy()
        if not inflight:
            return
        self._captured &= set(inflight)
        slow = []
        if self.threshold > 0:
            slow = [(key, state, ident) for key, (state, ident) in inflight.items()
                    if key not in self._captured and now - state.start >= self.threshold]
        stuck = False
        if self.stuck_seconds > 0 and not self._stuck_reported:
            oldest = min(state.start for state, _ in inflight.values())
            stuck = now - max(self._last_finish, oldest) >= self.stuck_seconds
        if not stuck and (not slow or now < self._next_dump):
            return
        # Both limits are set before dumping, so a failing py-spy is not retried every pass.
        if slow:
            self._next_dump = now + self.min_interval
        if stuck:
            self._stuck_reported = True
        threads = self._dump()
        if threads is None:
            return
        if slow:
            by_ident = {t.get("thread_id"): t for t in threads}
            for key, state, ident in slow:
                self._captured.add(key)
                self._report_slow(state, by_ident.get(ident), now - state.start)
        if stuck:
            oldest_state = min((s for s, _ in inflight.values()), key=lambda s: s.start)
            self._report_stuck(threads, len(inflight), now - max(self._last_finish,
                                                                    oldest_state.start),
                               oldest_state)

    def _dump(self) -> list[dict[str, Any]] | None:
        try:
            threads = pyspy.dump_json(os.getpid(), nonblocking=True)
        except (pyspy.PermissionProblem, pyspy.PySpyMissing) as exc:
            self._disabled = True
            get_logger().warning("slow-request stacks are off in process %d: %s",
                                 os.getpid(), exc)
            return None
        except pyspy.PySpyError as exc:
            get_logger().warning("slow-request stack capture failed: %s", exc)
            return None
        self.captures += 1
        return threads

    # ------------------------------------------------------------------ reporting

    def _report_slow(self, state: Any, thread: dict[str, Any] | None, elapsed: float) -> None:
        span = getattr(state, "span", None)
        route = getattr(state, "route", None) or getattr(state, "path", "?")
        if thread is None:
            stack = "(the request's thread was not in py-spy's dump)"
            attrs: dict[str, Any] = {"code.stacktrace": stack}
        else:
            stack = pyspy.format_threads([thread])[:_MAX_STACK]
            attrs = {"code.stacktrace": stack,
                     "thread.id": int(thread.get("os_thread_id") or thread.get("thread_id") or 0),
                     "thread.name": str(thread.get("thread_name") or "")}
        attrs["spyglass.elapsed_seconds"] = round(elapsed, 3)
        attrs["spyglass.threshold_seconds"] = self.threshold
        message = ("slow request %s %s still running after %.1fs (threshold %gs); "
                   "stack of its thread:\n%s")
        args = (getattr(state, "method", "?"), route, elapsed, self.threshold, stack)
        if span is not None and span.is_recording():
            span.add_event(EVENT_NAME, attrs)
            with trace.use_span(span, end_on_exit=False):
                self.log.warning(message, *args)
        else:
            self.log.warning(message, *args)

    def _report_stuck(self, threads: list[dict[str, Any]], inflight: int, idle: float,
                      oldest: Any) -> None:
        message = ("worker %d is stuck: %d request(s) in flight and none finished for %.1fs; "
                   "stacks of every thread:\n%s")
        args = (os.getpid(), inflight, idle, pyspy.format_threads(threads)[:4 * _MAX_STACK])
        span = getattr(oldest, "span", None)
        if span is not None and span.get_span_context().is_valid:
            with trace.use_span(span, end_on_exit=False):
                self.log.warning(message, *args)
        else:
            self.log.warning(message, *args)
