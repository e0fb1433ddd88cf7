"""Service overview: is each service healthy and within its SLO right now?

RED per service (rate, 5xx ratio, latency percentiles with exemplars so a slow point opens its
trace), 30-day SLO status and error budget from the objectives in alerts/slos.yaml, and the
routes that cost the most latency or errors.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .common import (
    DEFAULT_AVAILABILITY,
    PERCENTILES,
    REQUESTS,
    SEL,
    SERVER_ERRORS,
    SLO_WINDOW,
    RefIds,
    bad_ratio,
    base,
    instant_table,
    latency_threshold,
    load_slos,
    number,
    per_service_constant,
    prom,
    quantile,
    rate_sum,
    single_stat,
    steps,
    ts,
)

UID = "spyglass-overview"


def le_regex(threshold: float) -> str:
    """PromQL regex for a bucket's ``le``: prometheus_client writes 1 as ``1.0``."""
    text = number(threshold).replace(".", "\\\\.")
    return text if "." in number(threshold) else f"{text}(\\\\.0)?"


def _ratio(numerator: str, denominator: str, window: str, by: str = "service") -> str:
    """errors/total over ``window``; a service without errors yields 0, not an empty result."""
    num = f"sum by ({by}) (increase({numerator}[{window}]))"
    den = f"sum by ({by}) (increase({denominator}[{window}]))"
    return f"(({num}) or ({den}) * 0) / ({den})"


def error_ratio_expr(window: str = SLO_WINDOW) -> str:
    """Share of 5xx responses per service over ``window``."""
    return _ratio(
        f"{REQUESTS}_count{{{SEL}, {SERVER_ERRORS}}}", f"{REQUESTS}_count{{{SEL}}}", window
    )


def availability_expr(window: str = SLO_WINDOW) -> str:
    return f"1 - {error_ratio_expr(window)}"


def objectives() -> dict[str, float]:
    return {s.service: s.availability for s in load_slos()}


def objective_expr() -> str:
    """Per-service availability objective, limited to the selected services."""
    return (
        f"{per_service_constant(objectives())} and on (service) "
        f"group by (service) ({REQUESTS}_count{{{SEL}}})"
    )


def fast_ratio_expr() -> str:
    """Share of requests within each service's latency SLO threshold (30d), one term each."""
    terms = []
    for slo in load_slos():
        if slo.latency_threshold is None:
            continue
        one = f'service="{slo.service}", environment="$environment"'
        terms.append(
            f"(sum by (service) (increase({REQUESTS}_bucket{{{one}, "
            f'le=~"{le_regex(slo.latency_threshold)}"}}[{SLO_WINDOW}])) / '
            f"sum by (service) (increase({REQUESTS}_count{{{one}}}[{SLO_WINDOW}])))"
        )
    body = " or ".join(terms) if terms else "vector(1)"
    return f"({body}) and on (service) group by (service) ({REQUESTS}_count{{{SEL}}})"


def slo_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    slos = load_slos()
    listed = ", ".join(f"{s.service} {s.availability:.2%}" for s in slos) or "none"
    budget = steps("red", (0, "orange"), (0.25, "green"))
    d = d.with_row(dashboard.Row(f"SLO ({SLO_WINDOW})"))
    d = d.with_panel(
        single_stat(
            f"Availability ({SLO_WINDOW})",
            f"Share of requests without a 5xx status over the last {SLO_WINDOW}, per service "
            f"(SLI of the availability SLO). Objectives from alerts/slos.yaml: {listed}.",
            "percentunit",
            [prom(availability_expr(), "{{service}}", instant=True)],
            decimals=3,
        )
    )
    d = d.with_panel(
        single_stat(
            "Availability vs objective",
            "30-day availability minus the service's objective. Negative (red) means the SLO "
            "is breached; services without an objective in alerts/slos.yaml show nothing.",
            "percentunit",
            [
                prom(
                    f"({availability_expr()}) - on (service) ({objective_expr()})",
                    "{{service}}",
                    instant=True,
                )
            ],
            thresholds=steps("red", (0, "green")),
            decimals=3,
        )
    )
    d = d.with_panel(
        single_stat(
            "Error budget left",
            f"Share of the {SLO_WINDOW} error budget (1 - objective) not yet spent by 5xx "
            "responses. Below 25% orange, spent (< 0) red.",
            "percentunit",
            [
                prom(
                    f"1 - ({error_ratio_expr()}) / on (service) (1 - ({objective_expr()}))",
                    "{{service}}",
                    instant=True,
                )
            ],
            thresholds=budget,
            decimals=1,
        )
    )
    latency = (
        ", ".join(
            f"{s.service} {s.latency_objective:.0%} < {s.latency_threshold}s"
            for s in slos
            if s.latency_threshold is not None and s.latency_objective is not None
        )
        or "none"
    )
    d = d.with_panel(
        single_stat(
            "Requests within latency SLO",
            f"Share of requests over {SLO_WINDOW} that finished within the service's latency "
            f"SLO threshold (from the histogram bucket at that bound). Objectives: {latency}. "
            "Below the lowest objective it turns red.",
            "percentunit",
            [prom(fast_ratio_expr(), "{{service}}", instant=True)],
            thresholds=steps(
                "red",
                (min((s.latency_objective or 0.99) for s in slos) if slos else 0.99, "green"),
            ),
            decimals=2,
        )
    )
    return d


def red_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    d = d.with_row(dashboard.Row("Rate, errors, duration"))
    d = d.with_panel(
        ts(
            "Request rate",
            "Requests per second per service, from the count of "
            f"{REQUESTS} (all routes, all status codes).",
            "reqps",
            [prom(rate_sum(f"{REQUESTS}_count", SEL, "service"), "{{service}}")],
        )
    )
    worst_budget = 1 - min(objectives().values(), default=DEFAULT_AVAILABILITY)
    d = d.with_panel(
        ts(
            "Error ratio (5xx)",
            "Share of requests answered with a 5xx status, per service. The orange line is the "
            "error rate the strictest availability objective allows on average; red is 5%.",
            "percentunit",
            [
                prom(
                    bad_ratio(f"{REQUESTS}_count", SEL, SERVER_ERRORS, "service"),
                    "{{service}}",
                )
            ],
            thresholds=steps("green", (worst_budget, "orange"), (0.05, "red")),
        )
    )
    refs = RefIds()
    threshold = latency_threshold()
    d = d.with_panel(
        ts(
            "Latency p50 / p95 / p99",
            "Server-side request duration percentiles per service. Exemplar dots link to the "
            "trace of a sampled request. The red line is the latency SLO threshold "
            f"({threshold}s).",
            "s",
            [
                prom(
                    quantile(q, REQUESTS, SEL, "service"),
                    f"{{{{service}}}} p{int(q * 100)}",
                    ref=refs(),
                    exemplar=True,
                )
                for q in PERCENTILES
            ],
            thresholds=steps("green", (threshold, "red")),
            width=24,
            height=9,
        )
    )
    return d


def routes_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    d = d.with_row(dashboard.Row("Top routes"))
    d = d.with_panel(
        instant_table(
            "Slowest routes (p99 over the time range)",
            "The 10 route templates with the highest p99 duration over the selected range; "
            "red above the latency SLO threshold.",
            "s",
            f"topk(10, histogram_quantile(0.99, sum by (service, http_route, le) "
            f"(rate({REQUESTS}_bucket{{{SEL}}}[$__range]))))",
            value_name="p99",
            thresholds=steps("green", (latency_threshold(), "red")),
        )
    )
    d = d.with_panel(
        instant_table(
            "Routes with most 5xx errors (time range)",
            "The 10 route templates that answered the most 5xx responses over the selected range.",
            "short",
            f"topk(10, sum by (service, http_route) "
            f"(increase({REQUESTS}_count{{{SEL}, {SERVER_ERRORS}}}[$__range])) > 0)",
            value_name="5xx responses",
            thresholds=steps("green", (1, "red")),
        )
    )
    return d


def build() -> dashboard.Dashboard:
    d = base(
        UID,
        "Spyglass / Service overview",
        "RED metrics, SLO status and error budget, and the costliest routes per service.",
    )
    return routes_row(red_row(slo_row(d)))
