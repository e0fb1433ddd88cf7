"""Spyglass under load while its backends are healthy, down, or black-holed.

Modes (all backends at once: OTLP traces and the Loki push API):

- ``healthy``: the nginx sink, the baseline for p99 and RSS;
- ``down``: a closed port (connection refused at once);
- ``blackhole``: a listener that accepts and never answers (each export waits for
  ``SPYGLASS_EXPORT_TIMEOUT``, 5 s by default).

The Flask app's ``/work`` endpoint is loaded for ``duration`` seconds in 10 s wrk slices; the
worker's RSS is read after each slice. The result gives RSS growth from the first to the last
slice, p99 per slice, and Spyglass's own drop counters from /metrics at the end.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from harness import wrk
from harness.blackhole import BlackHole
from harness.overhead import start_server
from harness.procs import free_port, http_get, rss_bytes
from harness.sink import NginxSink


def _mode(name: str, backend_url: str, app_env: dict[str, str], out: Path, duration: float,
          connections: int) -> dict[str, Any]:
    server, port, metrics_port = start_server(
        "spyglass", "flask", backend_url, 9, app_env, out / "logs" / f"outage-{name}.log")
    url = f"http://127.0.0.1:{port}/work"
    slices: list[dict[str, float]] = []
    try:
        wrk.run(url, 5, connections=connections)
        rss0 = rss_bytes(server.worker) / 2**20
        remaining = duration
        while remaining > 0:
            step = min(10.0, remaining)
            res = wrk.run(url, step, connections=connections)
            slices.append({"rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                           "rss_mib": rss_bytes(server.worker) / 2**20})
            remaining -= step
        drops: dict[str, float] = {}
        if metrics_port is not None:
            _, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30)
            for m in re.finditer(r'^(spyglass_(?:dropped|exported|export_errors)_total)\{([^}]*)\}'
                                 r' ([0-9.e+]+)', body.decode(), re.M):
                drops[f"{m.group(1)}{{{m.group(2)}}}"] = float(m.group(3))
    finally:
        server.stop()
    p99s = [s["p99_ms"] for s in slices]
    return {
        "duration_s": duration,
        "rss_start_mib": rss0,
        "rss_end_mib": slices[-1]["rss_mib"],
        "rss_growth_mib": slices[-1]["rss_mib"] - rss0,
        "rss_max_mib": max(s["rss_mib"] for s in slices),
        "p99_ms_median_of_slices": statistics.median(p99s),
        "p99_ms_max_slice": max(p99s),
        "rps_median": statistics.median(s["rps"] for s in slices),
        "agent_counters": drops,
        "slices": slices,
    }


def run(sink: NginxSink, app_env: dict[str, str], out: Path, duration: float,
        connections: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    result["healthy"] = _mode("healthy", sink.url, app_env, out, duration, connections)
    result["down"] = _mode("down", f"http://127.0.0.1:{free_port()}", app_env, out, duration,
                           connections)
    hole = BlackHole()
    try:
        result["blackhole"] = _mode("blackhole", hole.url, app_env, out, duration, connections)
    finally:
        hole.close()
    base = result["healthy"]
    for mode in ("down", "blackhole"):
        r = result[mode]
        r["p99_change_vs_healthy"] = (r["p99_ms_median_of_slices"]
                                      / base["p99_ms_median_of_slices"])
        r["rss_vs_healthy_end_mib"] = r["rss_end_mib"] - base["rss_end_mib"]
    return result
