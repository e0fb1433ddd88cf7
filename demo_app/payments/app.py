"""The payments service: ``gunicorn demo_app.payments.app:app``.

A charge takes a log-normally distributed time (median about 40 ms, a long tail), like a call
to a card processor, so latency histograms and percentiles have a shape worth looking at.
"""

from __future__ import annotations

import logging
import random
import time
import uuid

from flask import Flask, Response, jsonify, request

from demo_app import faults

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
STORE = faults.FaultStore("payments")
log = logging.getLogger("payments.app")

app = Flask(__name__)


@app.before_request
def _inject_faults() -> None:
    rule = request.url_rule
    faults.apply_sync(STORE, rule.rule if rule is not None else request.path)


@app.get("/healthz")
def healthz() -> Response:
    """Liveness for the launcher and compose."""
    return jsonify(status="ok")


@app.route("/_admin/faults", methods=["GET", "POST"])
def admin_faults() -> tuple[Response, int]:
    """GET lists the switched-on faults; POST {"name", "enabled", "value"?} flips one."""
    if request.method == "POST":
        try:
            STORE.set(*faults.parse_admin_request(request.get_json(silent=True)))
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
    return jsonify(STORE.as_json()), 200


@app.post("/payments")
def charge() -> tuple[Response, int]:
    """Charge ``{"order_id", "amount_cents"}`` and return a payment id."""
    body = request.get_json(silent=True) or {}
    if not isinstance(body.get("order_id"), int) or not isinstance(body.get("amount_cents"), int):
        return jsonify(error="expected order_id and amount_cents as integers"), 400
    time.sleep(min(random.lognormvariate(-3.2, 0.6), 2.0))  # processor latency with a tail
    payment_id = f"pay_{uuid.uuid4().hex[:16]}"
    log.info("order %s charged %s cents: %s", body["order_id"], body["amount_cents"], payment_id)
    return jsonify(payment_id=payment_id, order_id=body["order_id"]), 201
