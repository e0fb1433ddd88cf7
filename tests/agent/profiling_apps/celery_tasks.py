"""A Celery app (broker from $BROKER_URL) with one task that always fails (see README.md)."""

import os

from celery import Celery

app = Celery("celery_tasks", broker=os.environ["BROKER_URL"])
app.conf.task_ignore_result = True


class KnownBoom(RuntimeError):
    """The exception the tests look for."""


def raise_known_error(order_id: int) -> None:
    raise KnownBoom(f"task failed for order {order_id}")


@app.task(name="failing_task")
def failing_task(order_id: int) -> None:
    raise_known_error(order_id)
