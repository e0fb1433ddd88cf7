"""A Flask app with known failing, slow and CPU-heavy paths (see README.md)."""

import logging
import sys
import time

from flask import Flask, jsonify, request

app = Flask(__name__)
log = logging.getLogger("apps.orders")


class KnownBoom(RuntimeError):
    """The exception the tests look for."""


def raise_known_error() -> None:
    raise KnownBoom("the known failure")


def parse_order(text: str) -> int:
    return int(text)


def hung_in_known_function(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def burn_cpu_hot_loop(ms: float) -> int:
    total = 0
    deadline = time.perf_counter() + ms / 1000
    while time.perf_counter() < deadline:
        for i in range(2000):
            total += i * i % 7
    return total


@app.get("/boom")
def boom() -> str:
    raise_known_error()
    return "unreachable"


@app.get("/log-error")
def log_error() -> str:
    try:
        parse_order("not a number")
    except ValueError:
        log.error("order could not be parsed", exc_info=True)
    return "logged"


@app.get("/hang")
def hang() -> str:
    hung_in_known_function(float(request.args.get("seconds", "3")))
    return "done"


@app.get("/burn")
def burn() -> str:
    return str(burn_cpu_hot_loop(float(request.args.get("ms", "50"))))


@app.get("/modules")
def modules():  # type: ignore[no-untyped-def]
    return jsonify({"sentry_sdk": "sentry_sdk" in sys.modules})


@app.get("/health")
def health() -> str:
    return "ok"
