"""Logs: what the service said when it went wrong, and the trace of that request.

Reads Loki with the contract's stream labels (service_name, environment, level). Each log entry
carries trace_id as structured metadata, so a table of error logs links every row to its trace
in Jaeger. (The Loki datasource's derived field on trace_id gives the same jump inside the logs
panel's details; that is datasource provisioning, not dashboard JSON.)
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, logs, table
from grafana_foundation_sdk.models.common import LogsDedupStrategy, LogsSortOrder
from grafana_foundation_sdk.models.dashboard import (
    DataTransformerConfig,
    DynamicConfigValue,
    VariableRefresh,
    VariableSort,
)

from .common import LOKI, explore_trace_url, logql, skeleton, steps, ts

UID = "spyglass-logs"
STREAM = 'service_name="$service", environment="$environment"'
ERRORS = "{" + STREAM + ', level=~"error|critical"}'
LOKI_LABEL_VALUES = 1  # LokiVariableQueryType.LabelValues in Grafana's Loki datasource


def loki_label_variable(
    name: str, label: str, description: str, stream: str = ""
) -> dashboard.QueryVariable:
    query: dict[str, object] = {
        "type": LOKI_LABEL_VALUES,
        "label": label,
        "refId": "LokiVariableQueryEditor-VariableQuery",
    }
    if stream:
        query["stream"] = stream
    return (
        dashboard.QueryVariable(name)
        .label(name.capitalize())
        .description(description)
        .datasource(LOKI)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def build() -> dashboard.Dashboard:
    d = (
        skeleton(
            UID,
            "Spyglass / Logs",
            "Error logs of one service, log volume by level, and the jump to the trace.",
        )
        .with_variable(
            loki_label_variable(
                "environment", "environment", "Loki stream label `environment` of the log entries."
            )
        )
        .with_variable(
            loki_label_variable(
                "service",
                "service_name",
                "Loki stream label `service_name` (the service name) of the log entries.",
                stream='{environment="$environment"}',
            )
        )
    )
    d = d.with_panel(
        ts(
            "Log volume by level",
            "Log lines per level in each step of the graph (count_over_time over $__auto).",
            "short",
            [logql(f"sum by (level) (count_over_time({{{STREAM}}} [$__auto]))")],
            datasource=LOKI,
            width=16,
            height=7,
        )
    )
    d = d.with_panel(
        ts(
            "Error and critical lines",
            "Error and critical log lines per step; red when there are any.",
            "short",
            [logql(f"sum by (level) (count_over_time({ERRORS} [$__auto]))")],
            datasource=LOKI,
            thresholds=steps("green", (1, "red")),
            width=8,
            height=7,
        )
    )
    d = d.with_panel(
        logs.Panel()
        .title("Error logs")
        .description(
            "Newest error and critical lines of the service. Open a line's details for its "
            "trace_id; the Loki datasource's derived field opens the trace."
        )
        .unit("none")
        .datasource(LOKI)
        .span(24)
        .height(12)
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(LogsSortOrder.DESCENDING)
        .dedup_strategy(LogsDedupStrategy.NONE)
        .with_target(logql(ERRORS, max_lines=500))
    )
    d = d.with_panel(
        table.Panel()
        .title("Error logs with trace links")
        .description(
            "The same error lines as a table; click a trace_id to open that request's trace "
            "in Jaeger (Explore)."
        )
        .unit("none")
        .datasource(LOKI)
        .span(24)
        .height(10)
        .with_target(logql(ERRORS, max_lines=200))
        .with_transformation(
            DataTransformerConfig(id_val="extractFields", options={"source": "labels"})
        )
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"labels": True, "tsNs": True, "id": True, "labelTypes": True},
                    "indexByName": {"Time": 0, "level": 1, "trace_id": 2, "Line": 3},
                    "renameByName": {},
                },
            )
        )
        .override_by_name(
            "trace_id",
            [
                DynamicConfigValue(
                    id_val="links",
                    value=[
                        {
                            "title": "Open trace in Jaeger",
                            "url": explore_trace_url("${__value.raw}"),
                        }
                    ],
                )
            ],
        )
    )
    return d
