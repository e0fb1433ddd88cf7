"""WSGI config, as `startproject` writes it: DJANGO_SETTINGS_MODULE is set only here."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

application = get_wsgi_application()
