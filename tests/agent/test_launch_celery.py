"""``celery -A proj worker`` (prefork pool, two children) under ``spyglass run``.

Tasks are enqueued from the test process, which runs no agent, over the real Redis on
loopback. The worker must export one CONSUMER span per task and count every task in
``celery_task_duration_seconds`` on the single /metrics of the worker (the master owns it;
the pool children write into its directory), and each task's log line carries its trace id.
"""

from __future__ import annotations

import re

import pytest
from celery import Celery
from tests.agent import APPS, SERVICE, agent_env
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, spyglass_argv
from tests.support.prom import parse, scrape, value
from tests.support.waiting import free_port, wait_until

N = 20
TASK = "celery_proj.add"


@pytest.mark.slow
def test_celery_prefork_worker(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver, redis_broker_url: str
) -> None:
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    argv = spyglass_argv(
        "celery", "-A", "celery_proj", "worker", "--pool", "prefork", "-c", "2",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
        metrics_port=metrics_port, service_name=SERVICE)
    env = {**agent_env(otlp_receiver, loki_receiver), "BROKER_URL": redis_broker_url}
    with AppProcess(argv, env=env, cwd=APPS) as worker:
        worker.wait_http(metrics_url, status=200)
        client = Celery(broker=redis_broker_url)
        try:
            for i in range(N):
                client.send_task(TASK, args=(i, 1000))
        finally:
            client.close()

        def task_count() -> float:
            families = parse(scrape(metrics_url)[1])
            return value(families, "celery_task_duration_seconds_count", task_name=TASK)

        wait_until(lambda: task_count() == N, timeout=30,
                   message=f"celery_task_duration_seconds_count == {N}\n{worker.describe()}")
        families = parse(scrape(metrics_url)[1])
        assert value(families, "celery_task_duration_seconds_count", task_name=TASK,
                     outcome="success") == N
        # The prefork pool is up: the tasks ran in its children, counted on the master's
        # /metrics. (The spans' process.pid resource attribute cannot tell: it is fixed
        # before the fork and names the master; reported as an agent bug.)
        assert len(worker.children()) >= 2, worker.children()
        spans = otlp_receiver.wait_for_spans(lambda s: s.kind == "CONSUMER", count=N)
        assert len(spans) == N, [s.name for s in spans]
        assert {s.name for s in spans} == {f"run/{TASK}"}
        assert len({s.trace_id for s in spans}) == N
        assert all(s.attributes.get("celery.state") == "SUCCESS" for s in spans)

        by_x = {}
        for entry in loki_receiver.wait_for(lambda e: "adding" in e.line, count=N):
            match = re.search(r"adding (\d+) and 1000", entry.line)
            assert match, entry.line
            by_x[int(match.group(1))] = entry
        assert sorted(by_x) == list(range(N))
        consumer_traces = {s.trace_id for s in spans}
        for entry in by_x.values():
            assert entry.metadata.get("trace_id") in consumer_traces, entry
            assert f"trace_id={entry.metadata['trace_id']}" in entry.line
        # Each log line sits in the task's own span.
        consumer_spans = {s.span_id for s in spans}
        assert {e.metadata.get("span_id") for e in by_x.values()} == consumer_spans
        assert loki_receiver.errors == [] and otlp_receiver.errors == []
