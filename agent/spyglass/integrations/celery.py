"""Celery: task spans from opentelemetry-instrumentation-celery, plus task metrics and flush.

The contrib instrumentation connects to Celery's signals (publish, prerun, postrun, failure),
which are module-level and survive the prefork pool's fork. We add:

- ``celery_task_duration_seconds{task_name,outcome}`` and ``celery_tasks_published_total``;
- a flush of queued spans and logs when a pool process shuts down: billiard's children leave
  with ``os._exit``, which skips ``atexit``.
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


def setup_once(config: Config) -> None:
    instrument("opentelemetry.instrumentation.celery", "CeleryInstrumentor")
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
