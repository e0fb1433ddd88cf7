"""Celery worker metrics that need no HTTP traffic: queue backlog and GC, on the master's
/metrics. A single-slot prefork pool runs slow tasks, so the queue visibly backs up and drains.
"""

from __future__ import annotations

import pytest
from celery import Celery
from tests.agent import APPS, SERVICE, agent_env
from tests.support.procs import AppProcess, spyglass_argv
from tests.support.prom import parse, scrape, value
from tests.support.waiting import free_port, wait_until

N = 8


@pytest.mark.slow
def test_queue_length_and_gc_of_a_worker(redis_broker_url: str) -> None:
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    argv = spyglass_argv(
        "celery", "-A", "celery_proj", "worker", "--pool", "prefork", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
        "-Q", "spyglass-backlog", metrics_port=metrics_port, service_name=SERVICE)
    env = {**agent_env(None, None), "BROKER_URL": redis_broker_url,
           "SPYGLASS_CELERY_QUEUE_POLL_SECONDS": "0.2", "SPYGLASS_TRACES": "false",
           "SPYGLASS_LOGS": "false"}
    with AppProcess(argv, env=env, cwd=APPS) as worker:
        worker.wait_http(metrics_url, status=200)

        def backlog() -> float | None:
            samples = [s for fam in parse(scrape(metrics_url)[1]).values()
                       for s in fam.samples if s.name == "celery_queue_length"
                       and s.labels.get("queue") == "spyglass-backlog"]
            return samples[0].value if samples else None

        wait_until(lambda: backlog() == 0, timeout=30,
                   message=f"no celery_queue_length for the empty queue\n{worker.describe()}")
        client = Celery(broker=redis_broker_url)
        try:
            for _ in range(N):
                client.send_task("celery_proj.slow", args=(0.4,), queue="spyglass-backlog")
        finally:
            client.close()
        peak = wait_until(lambda: (backlog() or 0) >= 3 and backlog(), timeout=15,
                          message="the backlog never showed")
        assert peak <= N
        wait_until(lambda: backlog() == 0, timeout=30, message="the backlog never drained")

        # The broker's queue empties before the tasks the worker prefetched have run.
        def done() -> dict | None:  # type: ignore[type-arg]
            families = parse(scrape(metrics_url)[1])
            count = value(families, "celery_task_duration_seconds_count",
                          task_name="celery_proj.slow")
            return families if count == N else None

        families = wait_until(done, timeout=30, message=f"{N} tasks never all ran")
        # gc.collect() in each task: GC metrics are written after tasks, not only requests.
        assert value(families, "python_gc_collections_total") >= N
