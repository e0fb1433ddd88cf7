"""Sampling decides what is exported, never what is measured; a sampled parent is honoured.

Service B (``services/svc_b.py``, Flask under gunicorn gthread) runs under ``spyglass run``
with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` and ``OTEL_TRACES_SAMPLER_ARG=0``. Each
``/work`` request makes one ``requests`` call (to B's own ``/leaf``), three PostgreSQL SELECTs
and Redis SET/GET. Requests without a ``traceparent`` or with flag ``00`` export nothing; one
with flag ``01`` is continued (same trace id, the caller's span as parent) and exported. The
``/metrics`` counts cover every request and dependency call either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, http_get, spyglass_argv
from tests.support.prom import parse, scrape, value
from tests.support.waiting import free_port, wait_until

SERVICES = Path(__file__).resolve().parent / "services"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"

pytestmark = pytest.mark.slow


def test_ratio_zero_exports_nothing_but_counts_everything_and_honours_sampled_parent() -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS spyglass_trace_t (id int, name text)")
    port, mport = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    with OTLPReceiver() as otlp:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "SPYGLASS_LOGS": "false",
               "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0",
               "TARGET_URL": f"{url}/leaf/x"}
        argv = spyglass_argv("gunicorn", "-w", "1", "-k", "gthread", "--threads", "4", "-b",
                             f"127.0.0.1:{port}", "svc_b:app", service_name="svc-b",
                             metrics_port=mport)
        with AppProcess(argv, env=env, cwd=SERVICES) as app:
            # Probe an unmatched path: a probe that timed out while the worker was still
            # booting is answered (and counted) later, under http_route="unmatched".
            app.wait_http(f"{url}/ready-probe", timeout=30, status=404)
            # The engine's first-connect queries ran at import: count from here.
            before = _counts(f"http://127.0.0.1:{mport}/metrics")
            unsampled = [{}] * 3 + [{"traceparent": f"00-{'1' * 32}-{PARENT_ID}-00"}]
            sampled = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
            for headers in [*unsampled, sampled]:
                status, _, body = http_get(f"{url}/work", headers=headers, timeout=30)
                assert status == 200, body[:500]
                assert json.loads(body)["target"] == 200

            # One worker process, one FIFO export queue: once the sampled trace's spans are
            # in, anything the earlier requests had queued would be in too.
            def sampled_trace() -> bool:
                # /work, its requests span, /leaf, 3 SELECTs, SET, GET (+ SQLAlchemy connect).
                return len([s for s in otlp.spans() if s.trace_id == TRACE_ID]) >= 8

            wait_until(sampled_trace, timeout=20,
                       message=f"spans of the sampled trace; got {otlp.spans()}")
            spans = otlp.spans()
            assert {s.trace_id for s in spans} == {TRACE_ID}, [(s.name, s.trace_id) for s in spans]
            work = [s for s in spans if s.kind == "SERVER" and s.name == "GET /work"]
            assert len(work) == 1 and work[0].parent_span_id == PARENT_ID, work
            leaf = [s for s in spans if s.kind == "SERVER" and s.name == "GET /leaf/{tag}"]
            assert len(leaf) == 1, [s.name for s in spans]

            after = _counts(f"http://127.0.0.1:{mport}/metrics")
            delta = {key: after[key] - before[key] for key in before}
            # Per /work request: itself, one /leaf call, 3 SELECTs, SET and GET.
            assert delta == {"work": 5, "leaf": 5, "client": 5, "select": 15, "set": 5,
                             "get": 5}, delta


def _counts(metrics_url: str) -> dict[str, float]:
    families = parse(scrape(metrics_url)[1])
    server, db = "http_server_request_duration_seconds_count", \
        "db_client_operation_duration_seconds_count"
    return {
        "work": value(families, server, http_route="/work", http_response_status_code=200),
        "leaf": value(families, server, http_route="/leaf/{tag}"),
        "client": value(families, "http_client_request_duration_seconds_count",
                        http_request_method="GET", http_response_status_code=200),
        "select": value(families, db, db_system_name="postgresql", db_operation_name="SELECT"),
        "set": value(families, db, db_system_name="redis", db_operation_name="SET"),
        "get": value(families, db, db_system_name="redis", db_operation_name="GET"),
    }
