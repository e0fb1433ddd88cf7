"""Single-module Django settings for the orders service.

PostgreSQL through psycopg 3's connection pool when DATABASE_URL is set, else a SQLite file in
the demo's state directory. DEMO_DB_SCHEMA puts the tables in their own PostgreSQL schema, which
is how the tests share one database without touching each other.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

from demo_app import config

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "demo_app.orders.urls"
INSTALLED_APPS = ["demo_app.orders.apps.OrdersConfig"]
MIDDLEWARE = ["demo_app.orders.middleware.FaultMiddleware"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database() -> dict[str, Any]:
    url = config.database_url()
    if url is None:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(config.state_dir() / "orders.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    parts = urlparse(url)
    options: dict[str, Any] = {"pool": {"min_size": 1, "max_size": 8, "timeout": 10}}
    schema = os.environ.get("DEMO_DB_SCHEMA")
    if schema:
        options["options"] = f"-c search_path={schema}"
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


DATABASES = {"default": _database()}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
}
