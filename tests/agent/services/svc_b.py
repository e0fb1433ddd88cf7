"""Service B of the cross-service trace tests: Flask under gunicorn.

Plain application code with no Spyglass import. ``/work`` does one of each dependency call the
agent must trace, with secrets and SQL literals that must never be exported:

- ``requests`` to ``$TARGET_URL`` with ``user:pass@``, ``?token=``/``?password=``, an
  Authorization and a Cookie header;
- one ``SELECT`` with inline literals each through psycopg 3, psycopg2 and SQLAlchemy (its
  engine URL carries a password; PostgreSQL here uses trust auth, so it is ignored);
- Redis ``SET`` and ``GET``;
- with ``?enqueue=1``, ``send_task`` of the Celery task by *name*: B does not import the task
  code, the common layout and the case where the contrib instrumentation knows no task object.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
import psycopg2
import redis
import requests
import sqlalchemy
from celery import Celery
from flask import Flask, jsonify, request
from trace_secrets import (
    AUTHORIZATION,
    COOKIE,
    PG_PASSWORD,
    QUERY_PASSWORD,
    TOKEN,
    URL_PASSWORD,
    URL_USER,
)

PG_HOSTPORT = "127.0.0.1:5432"
SQL = "SELECT id, name FROM spyglass_trace_t WHERE name = 'alice' AND id = 42"
TARGET_URL = os.environ.get("TARGET_URL", "")

app = Flask(__name__)
celery_app = Celery("svc_b", broker=os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"))
celery_app.conf.task_default_queue = os.environ.get("CELERY_QUEUE", "celery")
cache = redis.Redis(host="127.0.0.1", port=6379)
engine = sqlalchemy.create_engine(
    f"postgresql+psycopg2://postgres:{PG_PASSWORD}@{PG_HOSTPORT}/test", pool_size=1)
# Connect once at import so the dialect's first-connect queries are not part of a request.
with engine.connect() as _conn:
    pass


def _authority_url() -> str:
    parts = urlsplit(TARGET_URL)
    return (f"{parts.scheme}://{URL_USER}:{URL_PASSWORD}@{parts.netloc}{parts.path}"
            f"?token={TOKEN}&password={QUERY_PASSWORD}&q=1")


@app.route("/work")
def work():  # type: ignore[no-untyped-def]
    out: dict[str, object] = {}
    if TARGET_URL:
        resp = requests.get(_authority_url(), timeout=10, headers={
            "Authorization": AUTHORIZATION, "Cookie": COOKIE})
        out["target"] = resp.status_code
    with psycopg.connect(f"postgresql://postgres:{PG_PASSWORD}@{PG_HOSTPORT}/test") as conn:
        out["psycopg"] = conn.execute(SQL).fetchall()
    conn2 = psycopg2.connect(f"postgresql://postgres:{PG_PASSWORD}@{PG_HOSTPORT}/test")
    try:
        with conn2.cursor() as cur:
            cur.execute(SQL)
            out["psycopg2"] = cur.fetchall()
    finally:
        conn2.close()
    with engine.connect() as sa:
        out["sqlalchemy"] = [tuple(r) for r in sa.execute(sqlalchemy.text(SQL))]
    cache.set("spyglass-trace-key", "v")
    out["redis"] = (cache.get("spyglass-trace-key") or b"").decode()
    if request.args.get("enqueue"):
        out["task_id"] = celery_app.send_task("tasks.task1", args=[1]).id
    return jsonify(out)


@app.route("/leaf/<tag>")
def leaf(tag: str):  # type: ignore[no-untyped-def]
    return jsonify({"leaf": tag})
