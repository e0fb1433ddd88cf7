"""Request outcomes per endpoint, and their percentiles.

Latency is measured from the moment a request is sent until its whole body has arrived.
An error is a status >= 500 or an exception (timeout, refused connection); 4xx answers are the
client's fault and count as answered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

PERCENTILES = (50, 95, 99)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class EndpointStats:
    """Outcomes of one endpoint, e.g. ``GET /products/{product_id}``."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def percentiles(self) -> dict[int, float]:
        """p50/p95/p99 latency in seconds."""
        ordered = sorted(self.latencies)
        return {p: percentile(ordered, p) for p in PERCENTILES}


@dataclass
class Stats:
    """Everything a load run observed."""

    endpoints: dict[str, EndpointStats] = field(default_factory=dict)
    skipped: int = 0  # scheduled requests not sent because `concurrency` were in flight
    started: float = field(default_factory=time.monotonic)

    def record(self, endpoint: str, latency: float, error: bool) -> None:
        """Count one finished request."""
        entry = self.endpoints.setdefault(endpoint, EndpointStats())
        entry.requests += 1
        entry.errors += int(error)
        entry.latencies.append(latency)

    def total(self) -> EndpointStats:
        """All endpoints together."""
        merged = EndpointStats()
        for entry in self.endpoints.values():
            merged.requests += entry.requests
            merged.errors += entry.errors
            merged.latencies.extend(entry.latencies)
        return merged

    def progress_line(self) -> str:
        """One short status line for the terminal."""
        elapsed = time.monotonic() - self.started
        total = self.total()
        p95 = total.percentiles()[95]
        rate = total.requests / elapsed if elapsed > 0 else 0.0
        return (
            f"[{elapsed:5.0f}s] requests={total.requests} errors={total.errors} "
            f"skipped={self.skipped} rate={rate:.1f}/s p95={p95 * 1000:.0f}ms"
        )

    def summary(self) -> str:
        """A table of requests, errors and p50/p95/p99 (ms) per endpoint, plus the total."""
        header = f"{'endpoint':<32} {'requests':>8} {'errors':>6} " + " ".join(
            f"{'p' + str(p) + ' ms':>9}" for p in PERCENTILES
        )
        rows = [header]
        named = [*sorted(self.endpoints.items()), ("total", self.total())]
        for name, entry in named:
            cells = " ".join(f"{v * 1000:>9.1f}" for v in entry.percentiles().values())
            rows.append(f"{name:<32} {entry.requests:>8} {entry.errors:>6} {cells}")
        if self.skipped:
            rows.append(f"skipped (concurrency limit reached): {self.skipped}")
        return "\n".join(rows)
