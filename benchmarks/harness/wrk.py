"""Run ``wrk --latency`` and parse its summary (requests, req/s, p50, p99)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    non_2xx: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> WrkResult:
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M))
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    non2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (total and rps and pct):
        raise ValueError("unparsable wrk output:\n" + out)
    return WrkResult(
        requests=int(total.group(1)), rps=float(rps.group(1)),
        p50_ms=_ms(pct["50"]), p90_ms=_ms(pct["90"]), p99_ms=_ms(pct["99"]),
        errors=sum(int(x) for x in errors.groups()) if errors else 0,
        non_2xx=int(non2.group(1)) if non2 else 0,
    )


def run(url: str, duration: float, threads: int = 1, connections: int = 4,
        script: Path | None = None, timeout_s: int = 10) -> WrkResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
           "--latency", f"--timeout={timeout_s}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    return parse(out)
