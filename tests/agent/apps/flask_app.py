"""A Flask app: `gunicorn flask_app:app`, `flask --app flask_app run`, `python flask_app.py`."""

import logging
import os

from flask import Flask, Response
from opentelemetry import trace

app = Flask(__name__)
log = logging.getLogger("apps.items")
tracer = trace.get_tracer("apps")


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    with tracer.start_as_current_span("load-item"):
        log.warning("item %s loaded", item_id)
    return Response(f"item {item_id}", headers={"X-App": "flask"})


@app.get("/health")
def health() -> str:
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
