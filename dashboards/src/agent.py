"""Agent health: is Spyglass itself delivering telemetry, and what is it dropping?

The agent never blocks the app: when a queue fills or an export fails it drops and counts
(`spyglass_dropped_total` by reason). This dashboard makes those counts visible, so missing
traces or logs can be told apart from a quiet app.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import (
    ValueMap,
    ValueMappingResult,
)

from .common import SEL, base, prom, rate_sum, single_stat, steps, ts

UID = "spyglass-agent"
ANY = 0.000001  # "greater than zero" for rates and increases that may be fractional


def build() -> dashboard.Dashboard:
    d = base(
        UID,
        "Spyglass / Agent health",
        "What the Spyglass agent exports, queues, drops and fails on, and which integrations run.",
    )
    d = d.with_row(dashboard.Row("Delivery"))
    d = d.with_panel(
        ts(
            "Exported",
            "Telemetry items (spans, log records) exported per second, by service and signal.",
            "ops",
            [
                prom(
                    rate_sum("spyglass_exported_total", SEL, "service, signal"),
                    "{{service}} {{signal}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Dropped",
            "Items dropped per second by signal and reason (queue_full, export_failed, "
            "shutdown). Anything above zero is red: that telemetry is lost.",
            "ops",
            [
                prom(
                    rate_sum("spyglass_dropped_total", SEL, "service, signal, reason"),
                    "{{service}} {{signal}} {{reason}}",
                )
            ],
            thresholds=steps("green", (ANY, "red")),
        )
    )
    d = d.with_panel(
        single_stat(
            "Dropped in time range",
            "Items dropped over the selected range, by signal and reason; red when any.",
            "short",
            [
                prom(
                    rate_sum(
                        "spyglass_dropped_total", SEL, "signal, reason", "$__range", "increase"
                    ),
                    "{{signal}} {{reason}}",
                    instant=True,
                )
            ],
            thresholds=steps("green", (ANY, "red")),
            width=12,
            decimals=0,
        )
    )
    d = d.with_panel(
        ts(
            "Export queue size",
            "Items waiting in the agent's bounded export queue, by signal. A queue that stays "
            "high means the backend is slower than the app.",
            "short",
            [
                prom(
                    f"sum by (service, signal) (spyglass_queue_size{{{SEL}}})",
                    "{{service}} {{signal}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Export errors",
            "Failed export attempts per second by signal (backend down, refused or slow); red "
            "when above zero.",
            "ops",
            [
                prom(
                    rate_sum("spyglass_export_errors_total", SEL, "service, signal"),
                    "{{service}} {{signal}}",
                )
            ],
            thresholds=steps("green", (ANY, "red")),
            width=24,
        )
    )

    d = d.with_row(dashboard.Row("Integrations and cardinality"))
    d = d.with_panel(
        single_stat(
            "Integration status",
            "One tile per service and integration: active (1) or failed to set up (0). Absent "
            "integrations (library not installed) are not listed.",
            "none",
            [
                prom(
                    f"min by (service, integration) (spyglass_integration_status{{{SEL}}})",
                    "{{service}} {{integration}}",
                    instant=True,
                )
            ],
            thresholds=steps("red", (1, "green")),
            width=12,
            height=8,
        ).mappings(
            [
                ValueMap(
                    options={
                        "0": ValueMappingResult(text="failed", color="red", index=0),
                        "1": ValueMappingResult(text="active", color="green", index=1),
                    }
                )
            ]
        )
    )
    d = d.with_panel(
        ts(
            "Metric series overflow",
            "Observations folded into the overflow series per second because a metric hit its "
            "cardinality limit (e.g. raw paths as labels); red when above zero.",
            "ops",
            [
                prom(
                    rate_sum("spyglass_metric_overflow_total", SEL, "service, metric"),
                    "{{service}} {{metric}}",
                )
            ],
            thresholds=steps("green", (ANY, "red")),
            height=8,
        )
    )
    return d
