"""A Celery app: `celery -A celery_proj worker`; broker from $BROKER_URL."""

import logging
import os

from celery import Celery

app = Celery("celery_proj", broker=os.environ["BROKER_URL"])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)
log = logging.getLogger("apps.tasks")


@app.task(name="celery_proj.add")
def add(x: int, y: int) -> int:
    log.warning("adding %s and %s", x, y)
    return x + y


@app.task(name="celery_proj.slow")
def slow(seconds: float) -> None:
    """Holds the only pool slot a while, so the queue backs up; collects garbage too."""
    import gc
    import time

    gc.collect()
    time.sleep(seconds)
