"""Endpoint drill-down: which route of one service is slow or failing, and how?

Pins one service and lets the user pick route templates (never raw paths: the agent records
``http_route``), then shows per-route RED, the status-code mix and a latency heatmap built from
the histogram buckets themselves (no re-bucketing in Grafana).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, heatmap
from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale

from .common import (
    PERCENTILES,
    PROMETHEUS,
    REQUESTS,
    SEL_ONE,
    SERVER_ERRORS,
    RefIds,
    bad_ratio,
    base,
    latency_threshold,
    prom,
    quantile,
    rate_sum,
    steps,
    ts,
)

UID = "spyglass-endpoint"
RSEL = SEL_ONE + ', http_route=~"$route"'


def route_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("route")
        .label("Route")
        .description("Route templates (http_route) the selected service has served.")
        .datasource(PROMETHEUS)
        .query(f"label_values({REQUESTS}_count{{{SEL_ONE}}}, http_route)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )


def build() -> dashboard.Dashboard:
    d = base(
        UID,
        "Spyglass / Endpoint drill-down",
        "Per-route rate, errors, latency, status codes and latency distribution of one service.",
        multi_service=False,
    ).with_variable(route_variable())
    threshold = latency_threshold()

    d = d.with_row(dashboard.Row("Per route"))
    d = d.with_panel(
        ts(
            "Request rate by route",
            "Requests per second for each selected route template.",
            "reqps",
            [prom(rate_sum(f"{REQUESTS}_count", RSEL, "http_route"), "{{http_route}}")],
        )
    )
    d = d.with_panel(
        ts(
            "Error ratio (5xx) by route",
            "Share of each route's requests answered with a 5xx status; orange from 1%, red "
            "from 5%.",
            "percentunit",
            [
                prom(
                    bad_ratio(f"{REQUESTS}_count", RSEL, SERVER_ERRORS, "http_route"),
                    "{{http_route}}",
                )
            ],
            thresholds=steps("green", (0.01, "orange"), (0.05, "red")),
        )
    )
    d = d.with_panel(
        ts(
            "Latency p95 by route",
            f"95th percentile duration of each selected route; red line at the latency SLO "
            f"threshold ({threshold}s).",
            "s",
            [prom(quantile(0.95, REQUESTS, RSEL, "http_route"), "{{http_route}}", exemplar=True)],
            thresholds=steps("green", (threshold, "red")),
        )
    )
    refs = RefIds()
    d = d.with_panel(
        ts(
            "Latency p50 / p95 / p99 (selected routes)",
            "Duration percentiles of the selected routes taken together, with exemplars that "
            "open the trace of a sampled request.",
            "s",
            [
                prom(
                    quantile(q, REQUESTS, RSEL, "service"),
                    f"p{int(q * 100)}",
                    ref=refs(),
                    exemplar=True,
                )
                for q in PERCENTILES
            ],
            thresholds=steps("green", (threshold, "red")),
        )
    )

    d = d.with_row(dashboard.Row("Responses"))
    d = d.with_panel(
        ts(
            "Status codes",
            "Responses per second of the selected routes by HTTP status code.",
            "reqps",
            [
                prom(
                    rate_sum(f"{REQUESTS}_count", RSEL, "http_response_status_code"),
                    "{{http_response_status_code}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Requests by method",
            "Requests per second of the selected routes by HTTP method.",
            "reqps",
            [
                prom(
                    rate_sum(f"{REQUESTS}_count", RSEL, "http_request_method"),
                    "{{http_request_method}}",
                )
            ],
        )
    )
    d = d.with_panel(
        heatmap.Panel()
        .title("Latency distribution")
        .description(
            "Requests per latency bucket over time for the selected routes (the agent's own "
            "histogram buckets, so no precision is invented). Cell values are request counts."
        )
        .unit("short")
        .datasource(PROMETHEUS)
        .span(24)
        .height(9)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s").decimals(3))
        .cell_values(heatmap.CellValues().unit("short"))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
            .fill("dark-orange")
            .reverse(False)
        )
        .with_target(
            prom(
                f"sum by (le) (increase({REQUESTS}_bucket{{{RSEL}}}[$__rate_interval]))",
                "{{le}}",
                heatmap_format=True,
                exemplar=True,
            )
        )
    )
    return d
