"""WSGI entry point: ``gunicorn demo_app.orders.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_app.orders.settings")

application = get_wsgi_application()
