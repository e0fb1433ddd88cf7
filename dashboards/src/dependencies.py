"""Dependencies: is the slowness or the error coming from something the service calls?

Databases and Redis share ``db_client_operation_duration_seconds`` (told apart by
``db_system_name``), outgoing HTTP is keyed by ``server_address``, and Celery shows both sides:
what is published and queued, and how tasks run.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .common import SEL, SERVER_ERRORS, bad_ratio, base, prom, quantile, steps, ts

UID = "spyglass-dependencies"
DB = "db_client_operation_duration_seconds"
HTTP_OUT = "http_client_request_duration_seconds"
TASKS = "celery_task_duration_seconds"


def _rate(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def _store(
    d: dashboard.Dashboard, name: str, selector: str, slow: tuple[float, float]
) -> dashboard.Dashboard:
    by = "db_system_name, db_operation_name"
    d = d.with_panel(
        ts(
            f"{name} operations",
            f"{name} operations per second by system and operation (SELECT, INSERT, GET, SET...).",
            "ops",
            [prom(_rate(f"{DB}_count", selector, by), "{{db_system_name}} {{db_operation_name}}")],
        )
    )
    return d.with_panel(
        ts(
            f"{name} latency p95",
            f"95th percentile client-side duration of {name.lower()} operations; orange from "
            f"{slow[0] * 1000:g} ms, red from {slow[1] * 1000:g} ms.",
            "s",
            [prom(quantile(0.95, DB, selector, by), "{{db_system_name}} {{db_operation_name}}")],
            thresholds=steps("green", (slow[0], "orange"), (slow[1], "red")),
        )
    )


def build() -> dashboard.Dashboard:
    d = base(
        UID,
        "Spyglass / Dependencies",
        "Databases, Redis, outgoing HTTP calls and Celery queues and tasks, as seen by the apps.",
    )
    d = d.with_row(dashboard.Row("Databases"))
    d = _store(d, "Database", SEL + ', db_system_name!="redis"', (0.1, 0.5))
    d = d.with_row(dashboard.Row("Cache (Redis)"))
    d = _store(d, "Redis", SEL + ', db_system_name="redis"', (0.01, 0.05))

    d = d.with_row(dashboard.Row("Outgoing HTTP"))
    d = d.with_panel(
        ts(
            "Outgoing request rate",
            "HTTP client requests per second by destination host (server_address).",
            "reqps",
            [prom(_rate(f"{HTTP_OUT}_count", SEL, "server_address"), "{{server_address}}")],
            width=8,
        )
    )
    d = d.with_panel(
        ts(
            "Outgoing error ratio (5xx)",
            "Share of outgoing requests answered with a 5xx status, by destination; orange from "
            "1%, red from 5%.",
            "percentunit",
            [
                prom(
                    bad_ratio(f"{HTTP_OUT}_count", SEL, SERVER_ERRORS, "server_address"),
                    "{{server_address}}",
                )
            ],
            thresholds=steps("green", (0.01, "orange"), (0.05, "red")),
            width=8,
        )
    )
    d = d.with_panel(
        ts(
            "Outgoing latency p95",
            "95th percentile duration of outgoing HTTP requests by destination; red from 1 s.",
            "s",
            [prom(quantile(0.95, HTTP_OUT, SEL, "server_address"), "{{server_address}}")],
            thresholds=steps("green", (1, "red")),
            width=8,
        )
    )

    d = d.with_row(dashboard.Row("Celery"))
    d = d.with_panel(
        ts(
            "Queue length",
            "Messages waiting in each Celery queue (broker-side backlog); orange from 100, red "
            "from 1000.",
            "short",
            [prom(f"max by (queue) (celery_queue_length{{{SEL}}})", "{{queue}}")],
            thresholds=steps("green", (100, "orange"), (1000, "red")),
        )
    )
    d = d.with_panel(
        ts(
            "Tasks published",
            "Tasks sent to the broker per second, by task name.",
            "ops",
            [prom(_rate("celery_tasks_published_total", SEL, "task_name"), "{{task_name}}")],
        )
    )
    d = d.with_panel(
        ts(
            "Tasks run by outcome",
            "Tasks finished per second by outcome (success, failure, retry).",
            "ops",
            [prom(_rate(f"{TASKS}_count", SEL, "outcome"), "{{outcome}}")],
        )
    )
    d = d.with_panel(
        ts(
            "Task failure ratio",
            "Share of task runs that failed, by task name; orange from 1%, red from 5%.",
            "percentunit",
            [
                prom(
                    bad_ratio(f"{TASKS}_count", SEL, 'outcome="failure"', "task_name"),
                    "{{task_name}}",
                )
            ],
            thresholds=steps("green", (0.01, "orange"), (0.05, "red")),
        )
    )
    d = d.with_panel(
        ts(
            "Task duration p95",
            "95th percentile run time of each task.",
            "s",
            [prom(quantile(0.95, TASKS, SEL, "task_name"), "{{task_name}}")],
            width=24,
        )
    )
    return d
