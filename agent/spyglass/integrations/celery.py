"""Celery: task spans from opentelemetry-instrumentation-celery, plus task metrics and flush.

The contrib instrumentation connects to Celery's signals (publish, prerun, postrun, failure),
which are module-level and survive the prefork pool's fork. We add:

- ``celery_task_duration_seconds{task_name,outcome}`` and ``celery_tasks_published_total``;
- ``celery_queue_length{queue}``: the worker's main process asks the broker for the depth of
  each queue it consumes (a passive declare, which AMQP and kombu's Redis transport answer with
  the message count) every ``celery_queue_poll_seconds`` in a daemon thread, on its own
  connection;
- GC metrics after each task (they are otherwise written after HTTP requests);
- a flush of queued spans and logs when a pool process shuts down: billiard's children leave
  with ``os._exit``, which skips ``atexit``;
- a stand-in task object for publishes by a name the sender's registry does not know
  (``send_task("other.task")``, the usual way a web app enqueues a worker's task, and the case
  of opentelemetry-python-contrib#609). The contrib ``before_task_publish`` handler starts and
  activates a span but can only store it on a task object; with none, ``after_task_publish``
  never finds it, and the span is only ended when its context manager is garbage-collected
  (at once under CPython refcounting, so it measures nothing and ends before the message is
  sent; later under any other collector, leaving it current for unrelated work). With the
  stand-in, the span is stored, ended after the publish and its context detached as for
  registered tasks. The trace itself already continues in the worker: the traceparent is
  injected into the message headers before the span is lost.
"""

from __future__ import annotations

import time
from typing import Any

from spyglass import metrics as _metrics
from spyglass import runtime
from spyglass._log import get_logger, warn_once_per
from spyglass.config import Config
from spyglass.integrations._contrib import instrument

NAME = "celery"
MODULES = ("celery",)

_started: dict[str, float] = {}
_MAX_UNKNOWN = 256


class _UnknownTask:
    """Holds the contrib instrumentation's per-task span dict for a task known only by name."""

    def __init__(self, name: str) -> None:
        self.name = name


def _fix_publish_of_unknown_tasks() -> None:
    from opentelemetry.instrumentation.celery import utils

    stand_ins: dict[str, _UnknownTask] = {}
    original = utils.retrieve_task_from_sender

    def retrieve_task_from_sender(kwargs: Any) -> Any:
        task = original(kwargs)
        sender = kwargs.get("sender")
        if task is None and isinstance(sender, str):
            task = stand_ins.get(sender)
            if task is None and len(stand_ins) < _MAX_UNKNOWN:  # bounded: names come from code
                task = stand_ins.setdefault(sender, _UnknownTask(sender))
        return task

    # The contrib handlers call it as utils.retrieve_task_from_sender(...) at signal time.
    utils.retrieve_task_from_sender = retrieve_task_from_sender


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.celery", "CeleryInstrumentor")
    _fix_publish_of_unknown_tasks()
    from celery import signals

    def prerun(task_id: str | None = None, **_: Any) -> None:
        if task_id:
            _started[task_id] = time.perf_counter()

    def postrun(task_id: str | None = None, task: Any = None, state: str | None = None,
                **_: Any) -> None:
        start = _started.pop(task_id or "", None)
        inst = _metrics.get()
        if start is None or inst is None:
            return
        outcome = {"SUCCESS": "success", "RETRY": "retry"}.get(state or "", "failure")
        name = getattr(task, "name", None) or "unknown"
        inst.celery_task_duration.labels(name, outcome).observe(time.perf_counter() - start)
        runtime.flush()

    def published(sender: str | None = None, **_: Any) -> None:
        inst = _metrics.get()
        if inst is not None:
            inst.celery_published.labels(str(sender or "unknown")).inc()

    def shutdown(**_: Any) -> None:
        from spyglass.agent import flush

        flush(3.0)

    signals.task_prerun.connect(prerun, weak=False)
    signals.task_postrun.connect(postrun, weak=False)
    signals.after_task_publish.connect(published, weak=False)
    def on_ready(sender: Any = None, **_: Any) -> None:
        _start_queue_poller(sender, config.celery_queue_poll_seconds)

    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_process_shutdown.connect(shutdown, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)


def _queue_names(consumer: Any) -> list[str]:
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    names = [q.name for q in queues if getattr(q, "name", None)]
    if not names:
        names = list(getattr(consumer.app.amqp, "queues", {}) or {}) or ["celery"]
    return sorted(set(names))[:64]


def _start_queue_poller(sender: Any, interval: float) -> None:
    """worker_ready fires in the worker's main process once it consumes: start polling."""
    import threading

    if sender is None or _metrics.get() is None:
        return
    thread = threading.Thread(target=_poll_queues, args=(sender, interval), daemon=True,
                              name="spyglass-celery-queues")
    thread.start()


def _depth(conn: Any, name: str) -> float:
    """Messages waiting in ``name``; 0 for a queue the broker does not know yet.

    Kombu's Redis transport keeps a queue as a list, which Redis deletes when it is empty, so a
    drained queue answers the passive declare with 404. A channel per queue, because an AMQP
    404 closes the channel it happened on.
    """
    from amqp.exceptions import ChannelError

    channel = conn.channel()
    try:
        return float(channel.queue_declare(queue=name, passive=True).message_count)
    except ChannelError as exc:
        # amqp raises NotFound; kombu's virtual transports a plain ChannelError with 404.
        if getattr(exc, "reply_code", None) == 404 or "NOT_FOUND" in str(exc):
            return 0.0
        raise
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001
            pass


def _poll_queues(consumer: Any, interval: float) -> None:
    names = _queue_names(consumer)
    while True:
        inst = _metrics.get()
        if inst is None:
            return
        try:
            with consumer.app.connection_for_read() as conn:
                for name in names:
                    inst.celery_queue_length.labels(name).set(_depth(conn, name))
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must never hurt the worker
            warn_once_per("celery-queue-length", "cannot read Celery queue lengths (%s); "
                          "celery_queue_length is stale until the broker answers", exc)
            get_logger().debug("queue poll failed", exc_info=True)
        time.sleep(interval)
