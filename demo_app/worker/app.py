"""The Celery application, shared by the worker and by orders (which only publishes tasks).

Broker: RabbitMQ from CELERY_BROKER_URL; without it, kombu's SQLAlchemy transport on a SQLite
file in the state directory. That keeps the embedded mode on the real path (publish, a
separate worker process, prefork children, ack) with no server to install, which eager mode
or an in-memory broker cannot do across processes. (kombu's filesystem transport was tried
first: its consumer can pick up a message file before the producer has written it, and the
worker then dies on an empty JSON document.)

Result backend: Redis when REDIS_URL is set, with results expiring after ten minutes, because
Redis is already there and ``AsyncResult(id).state`` is handy when debugging the demo; the
shop itself never waits on a result (an order's state lives in the orders database). Without
Redis, results are ignored rather than kept in a second embedded store nobody reads.

Beat: the periodic catalogue refresh runs with ``worker -B`` (beat embedded in the worker).
The demo runs exactly one worker, which is the case embedded beat is made for; a deployment
with several workers would run ``celery beat`` once, separately.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

from demo_app import config

TAKE_PAYMENT = "demo_app.take_payment"
SEND_RECEIPT = "demo_app.send_receipt"
REFRESH_CATALOGUE = "demo_app.refresh_catalogue"
REFRESH_EVERY = 15.0  # seconds; below the storefront's catalogue TTL


def queue_name() -> str:
    """The one queue of the demo, namespaced so test runs sharing RabbitMQ stay apart."""
    return f"{config.namespace()}.tasks"


def ready_file() -> Path:
    """Touched when the worker is ready; the launcher waits for it."""
    return config.state_dir() / "worker.ready"


def _broker() -> tuple[str, dict[str, object]]:
    url = config.broker_url()
    if url:
        return url, {}
    # No transport options: this transport passes them all to SQLAlchemy's create_engine, so
    # the poll interval stays at kombu's default of one second.
    return f"sqla+sqlite:///{config.state_dir() / 'broker.sqlite3'}", {}


def make_app() -> Celery:
    """Build the Celery app from the environment."""
    broker, transport_options = _broker()
    celery = Celery("demo_app", broker=broker, include=["demo_app.worker.tasks"])
    result_backend = config.redis_url()
    celery.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        result_backend=result_backend,
        task_ignore_result=result_backend is None,
        result_expires=600,
        task_default_queue=queue_name(),
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        beat_schedule={
            "refresh-catalogue": {"task": REFRESH_CATALOGUE, "schedule": REFRESH_EVERY},
        },
    )
    return celery


app = make_app()


@worker_ready.connect
def _touch_ready_file(**_: object) -> None:
    ready_file().touch()
