"""Runtime: what the Python processes behind each service are doing, worker by worker.

Every series is per ``pid`` because pre-fork servers (gunicorn) run several workers and one
stuck or leaking worker hides in an average. The agent exports live pids only.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .common import SEL, base, prom, quantile, rate_sum, steps, ts

UID = "spyglass-runtime"


def build() -> dashboard.Dashboard:
    d = base(
        UID,
        "Spyglass / Runtime",
        "CPU, memory, threads, file descriptors, GC, event-loop lag and saturation per worker.",
    )
    d = d.with_row(dashboard.Row("Process"))
    d = d.with_panel(
        ts(
            "CPU per worker",
            "CPU time used per second by each worker process (1 = one full core; a Python "
            "worker rarely exceeds one core because of the GIL). Orange from 80%, red from 95%.",
            "percentunit",
            [
                prom(
                    rate_sum("process_cpu_seconds_total", SEL, "service, pid"),
                    "{{service}} pid {{pid}}",
                )
            ],
            thresholds=steps("green", (0.8, "orange"), (0.95, "red")),
        )
    )
    d = d.with_panel(
        ts(
            "Resident memory per worker",
            "Resident set size of each worker process; a line that only climbs suggests a leak.",
            "bytes",
            [
                prom(
                    f"max by (service, pid) (process_resident_memory_bytes{{{SEL}}})",
                    "{{service}} pid {{pid}}",
                )
            ],
        )
    )
    d = d.with_panel(
        ts(
            "Threads per worker",
            "OS threads in each worker process (app threads plus the agent's exporters).",
            "short",
            [prom(f"max by (service, pid) (process_threads{{{SEL}}})", "{{service}} pid {{pid}}")],
        )
    )
    d = d.with_panel(
        ts(
            "Open file descriptors per worker",
            "Open file descriptors (sockets, files) of each worker; a steady climb is a "
            "connection or file leak.",
            "short",
            [prom(f"max by (service, pid) (process_open_fds{{{SEL}}})", "{{service}} pid {{pid}}")],
        )
    )

    d = d.with_row(dashboard.Row("Garbage collector"))
    d = d.with_panel(
        ts(
            "GC collections",
            "Garbage collections per second by generation (0 is frequent and cheap, 2 is rare "
            "and walks every object).",
            "ops",
            [
                prom(
                    rate_sum("python_gc_collections_total", SEL, "service, generation"),
                    "{{service}} gen {{generation}}",
                )
            ],
            width=8,
        )
    )
    d = d.with_panel(
        ts(
            "GC pause p99",
            "99th percentile duration of one collection by generation; red from 100 ms, when "
            "pauses show up in request latency.",
            "s",
            [
                prom(
                    quantile(0.99, "python_gc_duration_seconds", SEL, "service, generation"),
                    "{{service}} gen {{generation}}",
                )
            ],
            thresholds=steps("green", (0.1, "red")),
            width=8,
        )
    )
    d = d.with_panel(
        ts(
            "Time spent in GC",
            "Share of wall time spent collecting garbage, per service; orange from 5%, red "
            "from 10%.",
            "percentunit",
            [
                prom(
                    rate_sum("python_gc_duration_seconds_sum", SEL, "service"),
                    "{{service}}",
                )
            ],
            thresholds=steps("green", (0.05, "orange"), (0.1, "red")),
            width=8,
        )
    )

    d = d.with_row(dashboard.Row("Concurrency"))
    d = d.with_panel(
        ts(
            "Event-loop lag per worker",
            "How late the asyncio event loop runs a scheduled callback, per worker (async "
            "servers only). Orange from 100 ms, red from 500 ms: blocking code on the loop.",
            "s",
            [
                prom(
                    f"max by (service, pid) (python_asyncio_event_loop_lag_seconds{{{SEL}}})",
                    "{{service}} pid {{pid}}",
                )
            ],
            thresholds=steps("green", (0.1, "orange"), (0.5, "red")),
        )
    )
    d = d.with_panel(
        ts(
            "Server saturation",
            "Requests in flight divided by the concurrent requests the server can take (sync "
            "workers x threads). At 100% (red) new requests queue. Absent for async servers.",
            "percentunit",
            [
                prom(
                    f"sum by (service) (http_server_active_requests{{{SEL}}})"
                    f" / sum by (service) (spyglass_server_capacity{{{SEL}}})",
                    "{{service}}",
                )
            ],
            thresholds=steps("green", (0.8, "orange"), (1, "red")),
        )
    )
    return d
