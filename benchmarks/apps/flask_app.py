"""Flask benchmark app (served by gunicorn with one sync worker)."""

from __future__ import annotations

from common import work
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/hello")
def hello() -> str:
    return "hello"


@app.get("/work")
def work_view():  # type: ignore[no-untyped-def]
    return jsonify(work())


@app.get("/items/<int:item_id>")
def item(item_id: int):  # type: ignore[no-untyped-def]
    return jsonify({"id": item_id})
