"""Where Spyglass's per-request cost goes: py-spy samples of its server under wrk load.

For each app and endpoint, Spyglass's server is loaded with wrk while ``py-spy record
--format raw --nonblocking`` samples every process of its tree (gunicorn's master is the
metrics owner and receives exemplars, so it is sampled too). Each sample is charged to the app
or the agent (see :func:`classify`), and a part's share of all samples, times the CPU µs per
request measured from /proc over the same window, estimates its µs per request. The wrk window
runs 2 s longer than py-spy, so rps*seconds slightly overcounts requests (a few %). py-spy's
own reads slow the target a little, so the absolute numbers are a bit off the unprofiled run;
the shares are what matter.
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


def _frames(stack: str) -> list[str]:
    """py-spy raw frames look like ``func (path/to/file.py:123)``; normalise to ``path:func``."""
    out = []
    for frame in stack.split(";"):
        func, _, loc = frame.partition(" (")
        path = loc.rstrip(")").rsplit(":", 1)[0]
        out.append(f"{path}:{func}")
    return out


AGENT = ("spyglass/", "opentelemetry/", "wrapt/", "prometheus_client/", "google/protobuf/",
         "requests/", "urllib3/", "charset_normalizer/", "idna/", "certifi/")
# Without --full-filenames py-spy shortens opentelemetry's namespace packages to paths like
# "trace/__init__.py"; these prefixes recognise them in such profiles.
OTEL_SHORT = ("trace/", "common/_internal", "common/http.py", "http/trace_exporter",
              "http/_log_exporter", "transport/", "attributes/", "resources/", "context/",
              "propagators/", "propagate/", "composite.py", "baggage/", "instrumentation/",
              "sdk/", "exporter/", "semconv/", "util/re.py", "util/http")
APP = ("flask/", "werkzeug/", "gunicorn/", "starlette/", "fastapi/", "uvicorn/", "anyio/",
       "pydantic", "common.py", "flask_app.py", "fastapi_app.py", "routes_app.py", "h11/",
       "httptools/", "uvloop/", "jinja2/", "click/", "blinker/", "itsdangerous/")


def _side(frame: str) -> str | None:
    path = frame.rsplit(":", 1)[0]
    if any(a in path for a in AGENT) or path.startswith(OTEL_SHORT):
        return "agent"
    if any(a in path for a in APP):
        return "app"
    return None  # stdlib: decided by the nearest caller outside it


def _module(frame: str) -> str:
    path = frame.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", "agent/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return "/".join(path.replace("/__init__.py", "").split("/")[:3])


def classify(stack: str) -> tuple[str, str]:
    """(side, label): side is "agent", "app" or "other"; the label names the agent's part.

    Each sample is charged to the innermost frame that is not stdlib: Flask's code running
    inside Spyglass's WSGI wrapper is the app's, a span's ``end`` inside ``server.finish`` is
    the agent's. The label is the innermost Spyglass function on the stack, followed by the
    library module where the time was really spent when that is not Spyglass itself.
    """
    frames = _frames(stack)
    side = None
    decider = ""
    for frame in reversed(frames):
        side = _side(frame)
        if side is not None:
            decider = frame
            break
    if side is None:
        return "other", "stdlib only (idle or interpreter)"
    if side == "app":
        return "app", _module(decider)
    idx = next((i for i in range(len(frames) - 1, -1, -1) if "spyglass/" in frames[i]), None)
    if idx is not None and any(f.endswith(":Logger.callHandlers") for f in frames[idx + 1:]):
        # Spyglass's logging tap calls the app's own handlers first: that part is bare work.
        return "app", "logging handlers (the app's own)"
    if idx is None:
        return "agent", "(no Spyglass frame) > " + _module(decider) + ":" + \
            decider.rsplit(":", 1)[1]
    app_below = [j for j in range(idx + 1, len(frames)) if _side(frames[j]) == "app"]
    if app_below:
        # Agent code called by the app itself (a contrib instrumentation such as dbapi),
        # not by Spyglass's wrapper further out: name the first agent frame the app called.
        first = next((f for f in frames[app_below[-1] + 1:] if _side(f) == "agent"), decider)
        return "agent", "app code > " + _module(first) + ":" + first.rsplit(":", 1)[1]
    label = frames[idx].split("spyglass/", 1)[1].replace(".py:", ".")
    if "spyglass/" not in decider and idx + 1 < len(frames):
        callee = frames[idx + 1]
        label += " > " + callee.rsplit(":", 1)[1]
    return "agent", label


def parse_raw(text: str) -> tuple[Counter[str], Counter[str]]:
    """(samples per side, samples per agent label)."""
    sides: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            side, label = classify(stack)
            sides[side] += int(count)
            if side == "agent":
                labels[label] += int(count)
    return sides, labels


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


def analyse(entry: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute an entry's shares from its raw py-spy files (also for older runs)."""
    text = "\n".join(Path(f).read_text() for f in entry["files"] if Path(f).exists())
    sides, labels = parse_raw(text)
    total = sum(sides.values()) or 1
    cpu = entry["cpu_us_per_req_while_profiled"]
    entry["samples"] = total
    entry["sides"] = {k: {"share": v / total, "us_per_req": v / total * cpu}
                      for k, v in sides.most_common()}
    entry["agent_parts"] = [(k, round(v / total, 4), round(v / total * cpu, 1))
                            for k, v in labels.most_common(25)]
    entry.pop("top_spyglass_functions_inclusive_share", None)
    return entry


def _record(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["py-spy", "record", "--format", "raw", "--nonblocking",
                             "--full-filenames",
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
                cpu_per_req = (cpu1 - cpu0) / max(1.0, res.rps * seconds) * 1e6
                result[f"{app} {ep}"] = {
                    "samples": 0,
                    "rps_while_profiled": res.rps,
                    "cpu_us_per_req_while_profiled": cpu_per_req,
                    "files": [str(f) for f in files],
                }
                analyse(result[f"{app} {ep}"])
        finally:
            server.stop()
    return result
