"""The publish span of a task sent by name ends after the publish, not when it is lost.

Real process under ``spyglass run`` (Celery's in-memory transport, so no broker is needed for
this case): ``services/publish_by_name.py``. Without the agent's stand-in task, the contrib
instrumentation starts the span in ``before_task_publish``, cannot store it (no task object for
an unknown name) and it only ends when garbage-collected, before the message is sent.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, spyglass_argv
from tests.support.waiting import free_port

SERVICES = Path(__file__).resolve().parent / "services"


def test_publish_span_of_a_task_unknown_to_the_sender_covers_the_publish() -> None:
    with OTLPReceiver() as otlp:
        argv = spyglass_argv("python", "publish_by_name.py", metrics_port=free_port(),
                             service_name="publisher")
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "SPYGLASS_LOGS": "false"}
        with AppProcess(argv, env=env, cwd=SERVICES) as proc:
            assert proc.proc is not None
            assert proc.proc.wait(timeout=30) == 0, proc.describe()
            out = proc.stdout()
        assert "current enqueue" in out, out  # the publish span did not stay current
        marked = int(out.split("before_publish_ns", 1)[1].split()[0])
        spans = otlp.wait_for_spans(lambda s: s.name == "apply_async/elsewhere.unknown_task")
        enqueue = otlp.wait_for_spans(lambda s: s.name == "enqueue")[0]
        publish = spans[0]
        assert publish.parent_span_id == enqueue.span_id
        assert publish.end_ns > marked, "publish span ended before the message was sent"
