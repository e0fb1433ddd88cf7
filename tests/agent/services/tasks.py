"""The Celery worker of the cross-service trace tests (run with the prefork pool).

``task1`` enqueues ``task2`` from inside a task (task-from-task), once with ``delay`` on the task
object and once with ``send_task`` by name through a second app, the reproduction of
opentelemetry-python-contrib#609. ``BROKER_URL`` and ``CELERY_QUEUE`` come from the environment
so every test run uses its own queue.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("CELERY_QUEUE", "celery")

app = Celery("tasks", broker=BROKER_URL)
app.conf.task_default_queue = QUEUE
app.conf.worker_hijack_root_logger = False
# No pidbox queue: it is exclusive per node name, and other test runs may share the broker.
app.conf.worker_enable_remote_control = False

# A separate app that knows no tasks, as in the issue: it can only send by name.
other = Celery("other", broker=BROKER_URL)
other.conf.task_default_queue = QUEUE


@app.task(name="tasks.task1")
def task1(n: int) -> int:
    task2.delay(n + 1)
    other.send_task("tasks.task3", args=[n + 2])
    return n


@app.task(name="tasks.task2")
def task2(n: int) -> int:
    return n


@app.task(name="tasks.task3")
def task3(n: int) -> int:
    return n
