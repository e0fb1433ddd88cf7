"""A small Flask app for the robustness tests: plain routes, logging, a slow and a crash route.

Runs under gunicorn (``gunicorn flask_app:app``) or as a script (``python flask_app.py PORT``,
Werkzeug's development server), always without any Spyglass import: the agent must come from
``spyglass run`` alone.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask, jsonify, request

logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
log = logging.getLogger("robust.app")

# A logger that does not propagate, with its own handler: its records must reach Loki too.
isolated = logging.getLogger("robust.isolated")
isolated.propagate = False
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("ISOLATED %(levelname)s %(message)s"))
isolated.addHandler(_handler)
isolated.setLevel(logging.INFO)

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "hello"


@app.get("/items/<int:item_id>")
def item(item_id: int):  # type: ignore[no-untyped-def]
    return jsonify(id=item_id, ua_len=len(request.headers.get("User-Agent", "")))


@app.get("/log/<tag>")
def emit_log(tag: str) -> str:
    log.info("request log %s", tag)
    isolated.warning("isolated log %s", tag)
    return f"logged {tag}"


@app.get("/sleep/<float:seconds>")
def sleep(seconds: float) -> str:
    import time

    time.sleep(min(seconds, 30.0))
    return "slept"


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("boom")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
