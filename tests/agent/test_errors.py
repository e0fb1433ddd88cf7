"""Errors to Sentry under ``spyglass run``: events carry the exported span's trace, the span
carries the event id, forked workers send, nothing loads without a DSN, secrets are scrubbed.

Sentry is played by :class:`SentryIngestStandIn` (tests/agent/test_errors_envelope.py), which
validates the envelope format; spans come from the OTLP stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from tests.agent.profiling_apps.harness import (
    APPS,
    app_env,
    gunicorn,
    missing_errors_wiring,
    missing_server_exception_hook,
)
from tests.agent.test_errors_envelope import (
    SentryIngestStandIn,
    exception_types,
    frame_functions,
)
from tests.support.otlp import OTLPReceiver, Span
from tests.support.procs import AppProcess, http_get, spyglass_argv
from tests.support.waiting import free_port

pytestmark = pytest.mark.timeout(120)

TEMPLATE = "http://jaeger.test:16686/trace/{trace_id}?uiFind=spyglass"


def _needs(reason: str | None) -> None:
    if reason:
        pytest.skip(reason)


@pytest.fixture
def ingest() -> Any:
    with SentryIngestStandIn() as server:
        yield server


def _assert_linked(event: dict[str, Any], span: Span) -> None:
    """The event names the span's trace and span; the span names the event."""
    trace_ctx = event["contexts"]["trace"]
    assert (trace_ctx["trace_id"], trace_ctx["span_id"]) == (span.trace_id, span.span_id)
    assert event["tags"]["trace_id"] == span.trace_id
    assert event["contexts"]["otel"]["trace_url"] == TEMPLATE.replace("{trace_id}", span.trace_id)
    assert span.attributes["sentry.event_id"] == event["event_id"]


def _by_trace(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["contexts"]["trace"]["trace_id"]: e for e in events}


def test_flask_errors_from_forked_workers_reach_sentry_linked_to_their_spans(
        otlp_receiver: OTLPReceiver, ingest: SentryIngestStandIn) -> None:
    _needs(missing_errors_wiring())
    port = free_port()
    env = app_env(otlp_receiver, SENTRY_DSN=ingest.dsn, SPYGLASS_TRACE_URL_TEMPLATE=TEMPLATE)
    argv = spyglass_argv(*gunicorn("-w", "2", "-b", f"127.0.0.1:{port}", "flask_app:app"),
                         service_name="errapp")
    with AppProcess(argv, env=env, cwd=APPS) as app:
        base = f"http://127.0.0.1:{port}"
        app.wait_http(base + "/health", status=200)
        secret = {"Authorization": "Bearer sekrit-header", "Cookie": "session=sekrit-cookie"}
        for _ in range(4):
            assert http_get(base + "/boom?token=sekrit-query", headers=secret)[0] == 500
        assert http_get(base + "/log-error")[0] == 200
        assert json.loads(http_get(base + "/modules")[2]) == {"sentry_sdk": True}

        booms = otlp_receiver.wait_for_spans(lambda s: s.name == "GET /boom", count=4)
        (logged_span,) = otlp_receiver.wait_for_spans(lambda s: s.name == "GET /log-error")
        events = ingest.wait_for_events(count=5)
        time.sleep(0.5)  # Flask also logs the exception: a duplicate would arrive by now
        events = ingest.events()
        assert len(events) == 5, [exception_types(e) for e in events]
        by_trace = _by_trace(events)
        for span in booms:
            event = by_trace[span.trace_id]
            _assert_linked(event, span)
            assert exception_types(event) == ["KnownBoom"]
            assert frame_functions(event)[-1] == "raise_known_error"
            mechanism = event["exception"]["values"][-1]["mechanism"]
            assert mechanism == {"type": "flask", "handled": False}
            assert event["request"] == {"method": "GET", "url": "/boom"}
            assert event["tags"]["http.route"] == "/boom"
            assert event["tags"]["service"] == "errapp"
        assert len({e["server_name"] for e in events}) == 1
        assert len(app.children()) == 2, "requests were served by forked workers"

        logged = by_trace[logged_span.trace_id]
        _assert_linked(logged, logged_span)
        assert exception_types(logged) == ["ValueError"]
        assert "parse_order" in frame_functions(logged)
        assert logged["logger"] == "apps.orders"
        assert logged["logentry"]["formatted"] == "order could not be parsed"

        raw = json.dumps(events)
        assert "sekrit" not in raw
        assert not [i for i in ingest.items if i[0]["type"] in ("transaction", "span")]
        assert ingest.errors == []


def test_asgi_exception_reaches_sentry_once_through_the_server_hook(
        otlp_receiver: OTLPReceiver, ingest: SentryIngestStandIn) -> None:
    _needs(missing_server_exception_hook())
    port = free_port()
    env = app_env(otlp_receiver, SENTRY_DSN=ingest.dsn, SPYGLASS_TRACE_URL_TEMPLATE=TEMPLATE)
    argv = spyglass_argv(sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
                         str(port), "fastapi_app:app")
    with AppProcess(argv, env=env, cwd=APPS) as app:
        base = f"http://127.0.0.1:{port}"
        app.wait_http(base + "/health", status=200)
        assert http_get(base + "/boom")[0] == 500
        (span,) = otlp_receiver.wait_for_spans(lambda s: s.name == "GET /boom")
        (event,) = ingest.wait_for_events()
        time.sleep(0.5)  # uvicorn logs the exception too: a duplicate would arrive by now
        assert len(ingest.events()) == 1, [exception_types(e) for e in ingest.events()]
        _assert_linked(event, span)
        assert exception_types(event) == ["KnownBoom"]
        assert frame_functions(event)[-1] == "raise_known_error"
        assert span.status_code == "ERROR"


def test_failed_celery_task_reaches_sentry_linked_to_the_task_span(
        otlp_receiver: OTLPReceiver, ingest: SentryIngestStandIn, redis_broker_url: str) -> None:
    _needs(missing_errors_wiring())
    from celery import Celery

    env = app_env(otlp_receiver, SENTRY_DSN=ingest.dsn, SPYGLASS_TRACE_URL_TEMPLATE=TEMPLATE,
                  BROKER_URL=redis_broker_url)
    argv = spyglass_argv(sys.executable, "-m", "celery", "-A", "celery_tasks", "worker",
                         "--pool", "prefork", "-c", "1", "--loglevel", "WARNING",
                         "--without-heartbeat", "--without-gossip", "--without-mingle")
    with AppProcess(argv, env=env, cwd=APPS):
        sender = Celery("sender", broker=redis_broker_url)
        try:
            sender.send_task("failing_task", args=[7])
        finally:
            sender.close()
        (span,) = otlp_receiver.wait_for_spans(
            lambda s: s.kind == "CONSUMER" and "failing_task" in s.name, timeout=30)
        (event,) = ingest.wait_for_events(timeout=15)
        _assert_linked(event, span)
        assert exception_types(event) == ["KnownBoom"]
        assert frame_functions(event)[-1] == "raise_known_error"
        assert event["tags"]["celery.task_name"] == "failing_task"


def test_without_a_dsn_no_sentry_code_is_imported(otlp_receiver: OTLPReceiver) -> None:
    port = free_port()
    argv = spyglass_argv(*gunicorn("-w", "1", "-b", f"127.0.0.1:{port}", "flask_app:app"))
    with AppProcess(argv, env=app_env(otlp_receiver), cwd=APPS) as app:
        base = f"http://127.0.0.1:{port}"
        app.wait_http(base + "/health", status=200)
        assert http_get(base + "/boom")[0] == 500
        assert http_get(base + "/log-error")[0] == 200
        assert json.loads(http_get(base + "/modules")[2]) == {"sentry_sdk": False}


def test_install_without_dsn_returns_false_and_imports_nothing() -> None:
    code = ("import sys; from spyglass import errors; "
            "print(errors.install(None), 'sentry_sdk' in sys.modules, errors.enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True, timeout=30).stdout
    assert out.split() == ["False", "False", "False"]


# --------------------------------------------------------------------------- scrubbing


def test_scrub_event_redacts_what_the_other_signals_redact() -> None:
    from spyglass.errors import scrub_event

    event = {
        "request": {"url": "https://bob:pw@shop.test/pay?card=1&token=abc",
                    "query_string": "password=hunter2&page=2",
                    "headers": {"Authorization": "Bearer x", "Cookie": "sid=1", "Accept": "*/*"},
                    "cookies": {"sid": "1"}},
        "exception": {"values": [
            {"type": "UniqueViolation", "module": "psycopg.errors",
             "value": "duplicate key: INSERT INTO users VALUES ('bob@example.com', 42)",
             "stacktrace": {"frames": [{"function": "f", "vars": {"password": "x"}}]}},
            {"type": "KeyError", "module": "builtins", "value": "'item 42'"}]},
        "extra": {"api_key": "k", "db.statement": "SELECT * FROM t WHERE id = 7", "n": 1},
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}},
        "breadcrumbs": {"values": [{"category": "query", "message": "SELECT 'secret'"}]},
    }
    scrub_event(event)
    request = event["request"]
    assert request["url"] == "https://REDACTED:REDACTED@shop.test/pay?card=1&token=REDACTED"
    assert request["query_string"] == "password=REDACTED&page=2"
    assert request["headers"] == {"Authorization": "REDACTED", "Cookie": "REDACTED",
                                  "Accept": "*/*"}
    assert request["cookies"] == "REDACTED"
    db_error, plain = event["exception"]["values"]
    assert db_error["value"] == "duplicate key: INSERT INTO users VALUES (?, ?)"
    assert "vars" not in db_error["stacktrace"]["frames"][0]
    assert plain["value"] == "'item 42'", "non-database messages are left alone"
    assert event["extra"] == {"api_key": "REDACTED", "db.statement": "SELECT * FROM t WHERE id = ?",
                              "n": 1}
    assert event["contexts"]["trace"] == {"trace_id": "a" * 32, "span_id": "b" * 16}
    assert event["breadcrumbs"]["values"][0]["message"] == "SELECT ?"


def test_trace_url_uses_the_template() -> None:
    from spyglass.errors import DEFAULT_TRACE_URL_TEMPLATE, trace_url

    assert DEFAULT_TRACE_URL_TEMPLATE == "http://localhost:16686/trace/{trace_id}"
    assert trace_url("ab" * 16, TEMPLATE) == f"http://jaeger.test:16686/trace/{'ab' * 16}" \
                                             "?uiFind=spyglass"
