"""Celery: task spans from opentelemetry-instrumentation-celery, plus task metrics and flush.

The contrib instrumentation connects to Celery's signals (publish, prerun, postrun, failure),
which are module-level and survive the prefork pool's fork. We add:

- ``celery_task_duration_seconds{task_name,outcome}`` and ``celery_tasks_published_total``;
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
    signals.worker_process_shutdown.connect(shutdown, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)
