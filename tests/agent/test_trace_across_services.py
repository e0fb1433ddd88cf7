"""One trace across real services: A (FastAPI/uvicorn) -> B (Flask/gunicorn) -> Celery worker.

Every program runs unmodified under ``spyglass run`` (apps in ``tests/agent/services``) and
exports to the loopback OTLP receiver, which decodes with ``opentelemetry-proto``. The three
services, PostgreSQL, Redis and RabbitMQ are started or reached once per module and shared by
the tests below; each test makes its own requests and selects its own trace.

What is shown:

- the trace id is the same from A's server span to a task enqueued by another task, and no span
  points at a parent that was never exported (opentelemetry-python-contrib#609: the contrib
  instrumentation leaves the publish span of a task sent by name unended and attached);
- DB and cache spans are children of the request span, carry ``db.system(.name)`` and a
  statement without literals, and the dependency histograms count each operation once;
- no secret (URL password, token/password query values, Authorization, Cookie) is exported;
- context reaches ``asyncio.gather``/``create_task`` and ``ThreadPoolExecutor`` workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from tests.support.otlp import OTLPReceiver, Span
from tests.support.procs import AppProcess, http_get, spyglass_argv
from tests.support.prom import parse, scrape, value
from tests.support.waiting import free_port, wait_until

SERVICES = Path(__file__).resolve().parent / "services"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    otlp: OTLPReceiver
    a: AppProcess
    b: AppProcess
    worker: AppProcess
    a_url: str
    b_url: str
    a_metrics: str
    b_metrics: str

    def describe(self) -> str:
        return "\n".join(p.describe() for p in (self.a, self.b, self.worker))


def _prepare_db() -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS spyglass_trace_t (id int, name text)")
        conn.execute("INSERT INTO spyglass_trace_t SELECT 42, 'alice' WHERE NOT EXISTS "
                     "(SELECT 1 FROM spyglass_trace_t)")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    _prepare_db()
    a_port, b_port, a_mport, b_mport, w_mport = (free_port() for _ in range(5))
    a_url, b_url = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{b_port}"
    queue = f"spyglass-trace-{uuid.uuid4().hex[:12]}"
    with OTLPReceiver() as otlp:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "SPYGLASS_LOKI_URL": None, "SPYGLASS_LOGS": "false",
            "OTEL_TRACES_SAMPLER": None, "OTEL_TRACES_SAMPLER_ARG": None,
            "BROKER_URL": BROKER_URL, "CELERY_QUEUE": queue,
            "B_URL": b_url, "TARGET_URL": f"{a_url}/leaf",
        }
        a = AppProcess(spyglass_argv("uvicorn", "svc_a:app", "--host", "127.0.0.1", "--port",
                                     str(a_port), service_name="svc-a", metrics_port=a_mport),
                       env=env, cwd=SERVICES)
        b = AppProcess(spyglass_argv("gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
                                     "-b", f"127.0.0.1:{b_port}", "svc_b:app",
                                     service_name="svc-b", metrics_port=b_mport),
                       env=env, cwd=SERVICES)
        worker = AppProcess(spyglass_argv("celery", "-A", "tasks", "worker", "-P", "prefork",
                                          "-c", "1", "-Q", queue, "-n", f"{queue}@%h",
                                          "--without-gossip",
                                          "--without-mingle", "--without-heartbeat",
                                          "-l", "info", service_name="svc-worker",
                                          metrics_port=w_mport),
                            env=env, cwd=SERVICES)
        with a, b, worker:
            a.wait_http(f"{a_url}/leaf", timeout=30, status=200)
            b.wait_http(f"{b_url}/leaf/x", timeout=30, status=200)
            wait_until(lambda: "ready." in worker.stderr() + worker.stdout()
                       or worker.returncode is not None, timeout=40,
                       message="celery worker ready")
            assert worker.returncode is None, worker.describe()
            yield Stack(otlp, a, b, worker, a_url, b_url,
                        f"http://127.0.0.1:{a_mport}/metrics",
                        f"http://127.0.0.1:{b_mport}/metrics")
            # Purge this run's queue so no message outlives the test.
            _delete_queue(queue)


def _delete_queue(queue: str) -> None:
    import kombu

    with kombu.Connection(BROKER_URL, connect_timeout=5) as conn:
        try:
            conn.default_channel.queue_delete(queue)
        except Exception:  # noqa: BLE001 - best effort clean-up of a broker we do not own
            pass


def _get_json(url: str) -> dict[str, object]:
    import json

    status, _, body = http_get(url, timeout=30)
    assert status == 200, (url, status, body[:500])
    return json.loads(body)  # type: ignore[no-any-return]


def _server_span(stack: Stack, service: str, name: str, since: int) -> Span:
    spans = stack.otlp.wait_for_spans(
        lambda s: s.kind == "SERVER" and s.name == name
        and s.resource.get("service.name") == service and s.start_ns >= since, timeout=20)
    assert len(spans) == 1, [(s.name, s.trace_id) for s in spans]
    return spans[0]


def _trace(stack: Stack, trace_id: str) -> list[Span]:
    return [s for s in stack.otlp.spans() if s.trace_id == trace_id]


def _children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def _one(spans: list[Span], what: str, **match: str) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one {what} {match}, got {[(s.name, s.kind) for s in found]}"
    return found[0]


def _show(spans: list[Span]) -> str:
    return "\n".join(f"  {s.resource.get('service.name')} {s.kind} {s.name!r} "
                     f"id={s.span_id} parent={s.parent_span_id or '-'}" for s in spans)


def _now_ns() -> int:
    import time

    return time.time_ns()


def test_one_trace_from_fastapi_through_flask_to_task_enqueued_by_a_task(stack: Stack) -> None:
    since = _now_ns()
    body = _get_json(f"{stack.a_url}/chain?enqueue=1")
    assert body["b_status"] == 200, body
    root = _server_span(stack, "svc-a", "GET /chain", since)

    wanted = {"run/tasks.task1", "run/tasks.task2", "run/tasks.task3"}

    def complete() -> list[Span] | None:
        spans = _trace(stack, root.trace_id)
        ids = {s.span_id for s in spans}
        names = {s.name for s in spans}
        if wanted <= names and all(s.parent_span_id in ids for s in spans if s is not root):
            return spans
        return None

    try:
        spans = wait_until(complete, timeout=30, interval=0.1)
    except AssertionError:
        spans = _trace(stack, root.trace_id)
        runs = [s for s in stack.otlp.spans() if s.name.startswith(("run/", "apply_async/"))]
        pytest.fail(f"trace {root.trace_id} incomplete or has orphans:\n{_show(spans)}\n"
                    f"all celery spans:\n{_show(runs)} "
                    f"traces={sorted({s.trace_id for s in runs})}\n{stack.describe()}")

    assert root.is_root
    roots = [s for s in spans if s.is_root]
    assert roots == [root], _show(spans)

    # The chain, link by link, each a direct child of the previous one.
    a_client = _one(_children(spans, root), "A httpx client span", kind="CLIENT")
    b_server = _one(_children(spans, a_client), "B server span", kind="SERVER", name="GET /work")
    assert b_server.resource["service.name"] == "svc-b"
    publish = _one(_children(spans, b_server), "B publish span", kind="PRODUCER",
                   name="apply_async/tasks.task1")
    run1 = _one(_children(spans, publish), "task1 run span", kind="CONSUMER",
                name="run/tasks.task1")
    assert run1.resource["service.name"] == "svc-worker"
    for task in ("task2", "task3"):
        pub = _one(_children(spans, run1), f"task1 publish of {task}", kind="PRODUCER",
                   name=f"apply_async/tasks.{task}")
        _one(_children(spans, pub), f"{task} run span", kind="CONSUMER", name=f"run/tasks.{task}")


def _family_value(url: str, sample: str, **labels: str) -> float:
    _, text = scrape(url)
    return value(parse(text), sample, **labels)


def test_db_and_cache_spans_are_children_of_the_request_without_literals(stack: Stack) -> None:
    pg = {"db_system_name": "postgresql", "db_operation_name": "SELECT"}
    db = "db_client_operation_duration_seconds_count"
    http_client = "http_client_request_duration_seconds_count"
    before = {
        "pg": _family_value(stack.b_metrics, db, **pg),
        "set": _family_value(stack.b_metrics, db, db_system_name="redis", db_operation_name="SET"),
        "get": _family_value(stack.b_metrics, db, db_system_name="redis", db_operation_name="GET"),
        "b_http": _family_value(stack.b_metrics, http_client, http_request_method="GET"),
        "a_http": _family_value(stack.a_metrics, http_client, http_request_method="GET"),
    }
    since = _now_ns()
    body = _get_json(f"{stack.a_url}/chain")
    b = body["b"]
    assert isinstance(b, dict) and b["psycopg"] == [[42, "alice"]] and b["redis"] == "v", body
    b_server = _server_span(stack, "svc-b", "GET /work", since)

    def db_spans() -> list[Span] | None:
        # Statement spans only: SQLAlchemy also adds a "connect" span per pool checkout.
        spans = [s for s in _trace(stack, b_server.trace_id) if s.kind == "CLIENT"
                 and ("db.system" in s.attributes or "db.system.name" in s.attributes)
                 and ("db.statement" in s.attributes or "db.query.text" in s.attributes)]
        return spans if len(spans) >= 5 else None

    spans = wait_until(db_spans, timeout=15, interval=0.1)
    trace = _trace(stack, b_server.trace_id)
    assert len(spans) == 5, "one span per operation (3 SELECTs, SET, GET):\n" + _show(trace)
    for span in spans:
        assert span.parent_span_id == b_server.span_id, _show(trace)
    systems = sorted(str(s.attributes.get("db.system.name", s.attributes.get("db.system")))
                     for s in spans)
    assert systems == ["postgresql"] * 3 + ["redis"] * 2, systems
    for span in spans:
        system = span.attributes.get("db.system.name", span.attributes.get("db.system"))
        statement = str(span.attributes.get("db.query.text", span.attributes.get("db.statement")))
        assert "alice" not in statement and "42" not in statement, (span.scope, statement)
        if system == "postgresql":
            assert statement.endswith("WHERE name = ? AND id = ?"), (span.scope, statement)

    after = {
        "pg": _family_value(stack.b_metrics, db, **pg),
        "set": _family_value(stack.b_metrics, db, db_system_name="redis", db_operation_name="SET"),
        "get": _family_value(stack.b_metrics, db, db_system_name="redis", db_operation_name="GET"),
        "b_http": _family_value(stack.b_metrics, http_client, http_request_method="GET"),
        "a_http": _family_value(stack.a_metrics, http_client, http_request_method="GET"),
    }
    delta = {k: after[k] - before[k] for k in before}
    assert delta == {"pg": 3, "set": 1, "get": 1, "b_http": 1, "a_http": 1}, delta


def test_secrets_never_reach_any_exported_attribute(stack: Stack) -> None:
    from tests.agent.services.trace_secrets import all_secrets

    since = _now_ns()
    _get_json(f"{stack.a_url}/chain")
    leaf = _server_span(stack, "svc-a", "GET /leaf", since)
    client = wait_until(lambda: next((s for s in _trace(stack, leaf.trace_id)
                                      if s.span_id == leaf.parent_span_id), None),
                        timeout=15, message="B's requests span, parent of A's /leaf span")
    assert client.kind == "CLIENT" and client.resource["service.name"] == "svc-b"

    secrets = all_secrets()
    for span in stack.otlp.spans():
        exported = repr(sorted(span.attributes.items())) + repr(span.events)
        for secret in secrets:
            assert secret not in exported, f"{secret!r} exported in {span.name}: {exported}"
    url = str(client.attributes.get("url.full", client.attributes.get("http.url")))
    assert "token=REDACTED" in url and "password=REDACTED" in url, url


def test_context_reaches_asyncio_tasks_and_thread_pool_workers(stack: Stack) -> None:
    for path, count in (("/fanout", 3), ("/threads", 2)):
        since = _now_ns()
        body = _get_json(f"{stack.a_url}{path}")
        assert body["statuses"] == [200] * count, body
        server = _server_span(stack, "svc-a", f"GET {path}", since)

        def clients(server: Span = server, count: int = count) -> list[Span] | None:
            found = [s for s in _trace(stack, server.trace_id)
                     if s.kind == "CLIENT" and s.resource["service.name"] == "svc-a"]
            return found if len(found) >= count else None

        try:
            found = wait_until(clients, timeout=15, interval=0.1)
        except AssertionError:
            late = [s for s in stack.otlp.spans() if s.start_ns >= since]
            pytest.fail(f"{path}: client spans not in the request's trace:\n{_show(late)}")
        assert len(found) == count
        for span in found:
            assert span.parent_span_id == server.span_id, (path, _show(found))
