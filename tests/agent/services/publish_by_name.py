"""Publishes a Celery task by a name this process does not know, inside a span of its own.

Used under ``spyglass run``. Prints the wall-clock time (ns) at which Celery's
``before_task_publish`` signal reached a receiver connected after the agent's, i.e. a moment
between the start of the publish and the message being sent. The publish span must end after
it (opentelemetry-python-contrib#609's unknown-task case ended it inside the handler).
"""

from __future__ import annotations

import time

from celery import Celery, signals
from opentelemetry import trace

app = Celery("publisher", broker="memory://")
marks: list[int] = []


def _mark(**_: object) -> None:
    marks.append(time.time_ns())


signals.before_task_publish.connect(_mark, weak=False)

with trace.get_tracer("publish_by_name").start_as_current_span("enqueue"):
    app.send_task("elsewhere.unknown_task", args=[1])
    assert trace.get_current_span().get_span_context().is_valid
    print("current", trace.get_current_span().name, flush=True)
print("before_publish_ns", marks[0], flush=True)
