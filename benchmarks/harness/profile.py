"""Where Spyglass's per-request cost goes: py-spy samples of its server under wrk load.

For each app and endpoint, Spyglass's server is loaded with wrk while ``py-spy record
--format raw --nonblocking`` samples every process of its tree (gunicorn's master is the
metrics owner and receives exemplars, so it is sampled too). Each sample's stack is put into
the first matching bucket below (most specific first), and a bucket's share of all samples,
times the CPU µs per request measured from /proc over the same window, estimates its µs per
request. py-spy's own reads slow the target a little, so the absolute numbers are a bit above
the unprofiled run; the shares are what matter.
"""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from harness import wrk
from harness.overhead import start_server
from harness.procs import tree_cpu_seconds, tree_pids
from harness.sink import NginxSink
from harness.udpsink import UdpCounter

# (bucket, substrings any of which marks a frame as belonging to it), most specific first.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("export thread: OTLP encode + HTTP (spyglass-traces)", ("spyglass/tracing.py", "_send")),
    ("export thread: Loki payload/gzip/HTTP (spyglass-logs)", ("loki.py", "send")),
    ("metrics endpoint / compaction (owner)", ("spyglass/metrics/collector.py",)),
    ("exemplar receive (owner)", ("exemplar",)),
    ("sqlite3 instrumentation (dbapi span)", ("opentelemetry/instrumentation/dbapi",)),
    ("log capture: LokiPusher.record", ("spyglass/logs/loki.py",)),
    ("server.finish: span.end + processors", ("opentelemetry/sdk/trace/__init__.py:end",
                                              "on_end")),
    ("server.finish: RED histogram + exemplar", ("spyglass/metrics",)),
    ("server.finish: other", ("spyglass/server.py:finish",)),
    ("server.begin: propagate.extract", ("propagate", "extract")),
    ("server.begin: start_span + sampler + ids", ("start_span", "should_sample",
                                                  "generate_")),
    ("server.begin: other (attrs, attach, metrics)", ("spyglass/server.py:begin",)),
    ("wsgi/asgi wrapper, route, other spyglass", ("spyglass/",)),
    ("other opentelemetry (context etc.)", ("opentelemetry/",)),
    ("wrapt", ("wrapt/",)),
]


def _frames(stack: str) -> list[str]:
    # py-spy raw frames look like "func (path/to/file.py:123)"; normalise to "path:func".
    out = []
    for frame in stack.split(";"):
        func, _, loc = frame.partition(" (")
        path = loc.rstrip(")").rsplit(":", 1)[0]
        out.append(f"{path}:{func}")
    return out


def classify(stack: str) -> str:
    frames = _frames(stack)
    joined = ";".join(frames)
    for name, needles in BUCKETS:
        if any(n in joined for n in needles):
            return name
    return "app, framework, server (bare work)"


def parse_raw(text: str) -> Counter[str]:
    buckets: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            buckets[classify(stack)] += int(count)
    return buckets


def top_functions(text: str, prefix: str = "spyglass/", n: int = 15) -> list[tuple[str, int]]:
    """Inclusive sample counts of the agent's own functions."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        seen = {f for f in _frames(stack) if prefix in f}
        for f in seen:
            counts[f.split("agent/", 1)[-1]] += int(count)
    return counts.most_common(n)


def _record(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["py-spy", "record", "--format", "raw", "--nonblocking",
                             "-r", "250", "-d", str(max(1, round(seconds))), "-p", str(pid),
                             "-o", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def run(sink: NginxSink, udp: UdpCounter, app_env: dict[str, str], out: Path, seconds: float,
        connections: int) -> dict[str, Any]:
    pdir = out / "profiles"
    pdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for app in ("flask", "fastapi"):
        server, port, _ = start_server("spyglass", app, sink.url, udp.port, app_env,
                                       out / "logs" / f"profile-{app}.log")
        try:
            for ep in ("/hello", "/work"):
                url = f"http://127.0.0.1:{port}{ep}"
                wrk.run(url, 2, connections=connections)
                box: dict[str, Any] = {}
                load = threading.Thread(
                    target=lambda u=url, b=box: b.update(res=wrk.run(u, seconds + 2,
                                                                connections=connections)))
                load.start()
                cpu0 = tree_cpu_seconds(server.proc.pid)
                files, procs = [], []
                for pid in tree_pids(server.proc.pid):
                    f = pdir / f"{app}{ep.replace('/', '_')}-{pid}.txt"
                    files.append(f)
                    procs.append(_record(pid, seconds, f))
                for p in procs:
                    p.wait(seconds + 60)
                cpu1 = tree_cpu_seconds(server.proc.pid)
                load.join()
                res = box["res"]
                text = "\n".join(f.read_text() for f in files if f.exists())
                buckets = parse_raw(text)
                total = sum(buckets.values()) or 1
                cpu_per_req = (cpu1 - cpu0) / max(1.0, res.rps * seconds) * 1e6
                result[f"{app} {ep}"] = {
                    "samples": total,
                    "cpu_us_per_req_while_profiled": cpu_per_req,
                    "buckets": {k: {"share": v / total, "us_per_req": v / total * cpu_per_req}
                                for k, v in buckets.most_common()},
                    "top_spyglass_functions_inclusive_share": [
                        (fn, c / total) for fn, c in top_functions(text)],
                    "files": [str(f) for f in files],
                }
        finally:
            server.stop()
    return result
