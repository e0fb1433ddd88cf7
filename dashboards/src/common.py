"""What every Spyglass dashboard shares: datasources, variables, selectors, SLOs, panel shapes.

Kept in one module (the monitoring-mixin habit of one config) so a datasource uid, a label
selector or an objective is written once. Panel helpers insist on a unit and a description,
which the dashboard tests also check on the generated JSON.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import (
    common as common_builders,
)
from grafana_foundation_sdk.builders import (
    dashboard,
    loki,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# --- datasources: fixed uids, provisioned by the stack (see the telemetry contract) -------------
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = DataSourceRef(type_val="loki", uid="loki")
JAEGER = DataSourceRef(type_val="jaeger", uid="jaeger")
DATASOURCE_UIDS = frozenset({"prometheus", "loki", "jaeger"})

TAG = "spyglass"

# --- label selectors (target labels attached by the Prometheus scrape config) ------------------
# `service` is multi-valued on most dashboards, hence the regex matcher.
SEL = 'service=~"$service", environment="$environment"'
# The endpoint drill-down pins one service.
SEL_ONE = 'service="$service", environment="$environment"'

REQUESTS = "http_server_request_duration_seconds"
SERVER_ERRORS = 'http_response_status_code=~"5.."'
PERCENTILES = (0.5, 0.95, 0.99)

# --- SLOs ---------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[2]
SLOS_FILE = REPO_ROOT / "alerts" / "slos.yaml"
SLO_WINDOW = "30d"
# Used only when alerts/slos.yaml is absent (it is the one place objectives live).
DEFAULT_AVAILABILITY = 0.995
DEFAULT_LATENCY_THRESHOLD = 0.5


@dataclass(frozen=True)
class Slo:
    service: str
    availability: float
    latency_objective: float | None
    latency_threshold: float | None


def load_slos(path: Path = SLOS_FILE) -> list[Slo]:
    """Per-service objectives from alerts/slos.yaml (shared with the alert rules)."""
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    slos = []
    for service, spec in sorted((data.get("slos") or {}).items()):
        latency = spec.get("latency") or {}
        slos.append(
            Slo(
                service=service,
                availability=float(spec["availability"]["objective"]),
                latency_objective=latency.get("objective"),
                latency_threshold=latency.get("threshold_seconds"),
            )
        )
    return slos


def number(value: float) -> str:
    """A float as PromQL text without binary noise (1 - 0.999 -> 0.001)."""
    return f"{value:.6g}"


def per_service_constant(values: dict[str, float]) -> str:
    """A PromQL vector holding one constant per service (label ``service``).

    Objectives live in YAML, not in Prometheus, so dashboards spell them out as constants that
    PromQL can join on ``service``.
    """
    parts = [
        f'label_replace(vector({number(v)}), "service", "{s}", "", "")'
        for s, v in sorted(values.items())
    ]
    return "(" + " or ".join(parts) + ")" if parts else "vector(0)"


def latency_threshold() -> float:
    """The panel threshold line for p99: the strictest latency SLO threshold."""
    thresholds = [s.latency_threshold for s in load_slos() if s.latency_threshold]
    return min(thresholds) if thresholds else DEFAULT_LATENCY_THRESHOLD


# --- variables ----------------------------------------------------------------------------------
def environment_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("environment")
        .label("Environment")
        .description("Value of the `environment` target label attached by the scrape config.")
        .datasource(PROMETHEUS)
        .query('label_values(up{service!=""}, environment)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def service_variable(*, multi: bool = True) -> dashboard.QueryVariable:
    var = (
        dashboard.QueryVariable("service")
        .label("Service")
        .description("Value of the `service` target label (the service name).")
        .datasource(PROMETHEUS)
        .query('label_values(up{environment="$environment"}, service)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        var = var.multi(True).include_all(True).all_value(".+")
    return var


# --- dashboards ---------------------------------------------------------------------------------
def skeleton(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """A dashboard with the shared time range, tags and links, and no variables yet."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .link(
            dashboard.DashboardLink("Spyglass")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def base(
    uid: str, title: str, description: str, *, multi_service: bool = True
) -> dashboard.Dashboard:
    """:func:`skeleton` plus the Prometheus ``environment`` and ``service`` variables."""
    return (
        skeleton(uid, title, description)
        .with_variable(environment_variable())
        .with_variable(service_variable(multi=multi_service))
    )


# --- queries ------------------------------------------------------------------------------------
class RefIds:
    """Hands out A, B, C... so every target of a panel has its own refId."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> str:
        ref = chr(ord("A") + self._next)
        self._next += 1
        return ref


def prom(
    expr: str,
    legend: str = "",
    *,
    ref: str = "A",
    instant: bool = False,
    table_format: bool = False,
    heatmap_format: bool = False,
    exemplar: bool = False,
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().datasource(PROMETHEUS).expr(expr).ref_id(ref)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    if heatmap_format:
        q = q.format(PromQueryFormat.HEATMAP)
    if exemplar:
        q = q.exemplar(True)
    return q


def logql(expr: str, *, ref: str = "A", max_lines: int | None = None) -> loki.Dataquery:
    q = loki.Dataquery().datasource(LOKI).expr(expr).ref_id(ref)
    if max_lines:
        q = q.max_lines(max_lines)
    return q


def rate_sum(
    metric: str, selector: str, by: str, window: str = "$__rate_interval", fn: str = "rate"
) -> str:
    """``sum by (by) (rate(metric{selector}[window]))``, the shape of most panels."""
    return f"sum by ({by}) ({fn}({metric}{{{selector}}}[{window}]))"


def bad_ratio(metric: str, selector: str, bad: str, by: str) -> str:
    """Share of ``metric`` events matching ``bad`` (e.g. 5xx), per ``by``, over $__rate_interval.

    The agent creates a status/outcome series on its first observation, so a service that never
    failed has no 5xx series at all and a plain ``bad / all`` division returns nothing ("No data"
    in Grafana). ``or all * 0`` makes that a 0 ratio wherever there is traffic (found by
    tests/stack/test_stack_demo_e2e.py against the demo shop).
    """
    bad_rate = rate_sum(metric, f"{selector}, {bad}", by)
    all_rate = rate_sum(metric, selector, by)
    return f"({bad_rate} or {all_rate} * 0) / {all_rate}"


def quantile(q: float, metric: str, selector: str, by: str) -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))"
    )


# --- thresholds ---------------------------------------------------------------------------------
def steps(base_color: str, *levels: tuple[float, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: ``base_color`` below the first level, then each level's color."""
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(
            [Threshold(value=None, color=base_color)]
            + [Threshold(value=v, color=c) for v, c in levels]
        )
    )


# --- panels -------------------------------------------------------------------------------------
def ts(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery | loki.Dataquery],
    *,
    thresholds: dashboard.ThresholdsConfig | None = None,
    width: int = 12,
    height: int = 8,
    min_zero: bool = True,
    datasource: DataSourceRef = PROMETHEUS,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(datasource)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if min_zero:
        panel = panel.min(0)
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
        )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single_stat(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    thresholds: dashboard.ThresholdsConfig | None = None,
    width: int = 6,
    height: int = 5,
    decimals: float | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .span(width)
        .height(height)
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.BACKGROUND)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def hide_time_column() -> DataTransformerConfig:
    return DataTransformerConfig(
        id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": {}}
    )


def instant_table(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    value_name: str,
    thresholds: dashboard.ThresholdsConfig | None = None,
    width: int = 12,
    height: int = 8,
) -> table.Panel:
    """A table of one instant query; the value column is renamed to ``value_name``."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .span(width)
        .height(height)
        .with_target(prom(expr, instant=True, table_format=True))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": {"Value": value_name}},
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name(value_name).desc(True)])
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    return panel


def explore_trace_url(trace_id: str) -> str:
    """A Grafana Explore URL that opens ``trace_id`` in the Jaeger datasource.

    ``trace_id`` may be a data-link variable such as ``${__value.raw}``; it is kept verbatim.
    """
    placeholder = "TRACEIDPLACEHOLDER"
    panes = {
        "trace": {
            "datasource": JAEGER.uid,
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "jaeger", "uid": JAEGER.uid},
                    "query": placeholder,
                }
            ],
            "range": {"from": "now-1h", "to": "now"},
        }
    }
    encoded = urllib.parse.quote(json.dumps(panes, separators=(",", ":")), safe="")
    return "/explore?schemaVersion=1&orgId=1&panes=" + encoded.replace(placeholder, trace_id)
