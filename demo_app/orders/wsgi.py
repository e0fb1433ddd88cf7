"""WSGI entry point: ``gunicorn demo_app.orders.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_app.orders.settings")

application = get_wsgi_application()

# Resolve the broker transport now, while the worker boots, rather than in the first checkout:
# for the embedded broker that imports kombu's SQLAlchemy transport and SQLAlchemy itself,
# about 0.5 s on an idle machine (several seconds on a busy one), which every gunicorn worker
# otherwise paid inside its first POST /orders. No I/O happens here: the broker connection
# itself is still opened lazily by the first publish, so a broker that is down cannot stop
# orders from starting.
from demo_app.worker.app import app as _celery_app  # noqa: E402

_celery_app.connection_for_write().transport  # noqa: B018
