"""/metrics scrape time across 4 gunicorn workers and 500 route templates, before and after
1,000 worker restarts.

gunicorn runs Spyglass with ``--max-requests 10 --max-requests-jitter 0`` and ``--preload``
(a restart is then a fork, not a re-import of Flask and 500 rules, which keeps 1,000 restarts
within a couple of minutes on two cores; Spyglass's per-worker setup still runs in every new
worker). "Before" is measured once every one of the 500 routes has been served (which already
costs about 50 restarts, since each worker lives 10 requests); "after" once at least
``restarts`` more workers have booted, or the churn budget (300 s) ran out: the result says
how many restarts really happened; "after_settled" once the owner's background fold has
taken in the files the last exited workers left. Each measurement is 20 idle scrapes with the Accept
header Prometheus 2.x sends (OpenMetrics preferred), and also 5 in the plain text format.
"""

from __future__ import annotations

import http.client
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import wrk
from harness.overhead import start_server
from harness.procs import tree_pids
from harness.sink import NginxSink

PROM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
               "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/r" .. (counter % 500) .. "/" .. counter)
end
"""


def _scrape(port: int, accept: str) -> tuple[float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    conn.request("GET", "/metrics", headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"/metrics answered {resp.status}")
    return elapsed, body


def _try(port: int, accept: str, n: int, errors: list[str]) -> list[tuple[float, bytes]]:
    ok = []
    for _ in range(n):
        try:
            ok.append(_scrape(port, accept))
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return ok


def _measure(port: int, metrics_dir: str | None) -> dict[str, Any]:
    errors: list[str] = []
    files = len(os.listdir(metrics_dir)) if metrics_dir and os.path.isdir(metrics_dir) else None
    om = _try(port, PROM_ACCEPT, 20, errors)
    text = _try(port, "text/plain", 5, errors)
    if not om:
        return {"scrape_errors": errors, "metrics_dir_files": files}
    body = om[-1][1].decode()
    times = sorted(t for t, _ in om)
    return {
        "openmetrics_ms_median": statistics.median(times) * 1e3,
        "openmetrics_ms_max": times[-1] * 1e3,
        "openmetrics_ms_first": om[0][0] * 1e3,
        "text_ms_median": statistics.median(t for t, _ in text) * 1e3 if text else None,
        "scrape_errors": errors,
        "body_kib": len(body) / 1024,
        # What a body that grows is made of: exemplars (OpenMetrics only) or more series.
        "exemplars": body.count(" # {"),
        "samples": sum(1 for line in body.splitlines() if line and not line.startswith("#")),
        "text_body_kib": len(text[-1][1]) / 1024 if text else None,
        "routes_in_scrape": len(set(re.findall(r'http_route="(/r\d+/\{item\})"', body))),
        "metrics_dir_files_before_scrapes": files,
    }


def _unfolded(metrics_dir: str | None) -> int:
    """Files of exited workers not yet folded into the archives."""
    if not metrics_dir or not os.path.isdir(metrics_dir):
        return 0
    count = 0
    for name in os.listdir(metrics_dir):
        found = re.fullmatch(r"[a-z_]+?_(\d+)\.db", name)
        if found and not os.path.exists(f"/proc/{found.group(1)}"):
            count += 1
    return count


def _boots(log: Path) -> int:
    return log.read_text(errors="replace").count("Booting worker with pid")


def _metrics_dir(root: int) -> str | None:
    """Spyglass's metrics directory, from the mmapped files in the server's memory maps
    (``/proc/<pid>/environ`` only shows the environment at exec, not what the agent set)."""
    for pid in tree_pids(root):
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        found = re.search(r"(/\S*spyglass-metrics-[^/\s]+)/", maps)
        if found:
            return found.group(1)
    return None


def restart_rate(sink: NginxSink, app_env: dict[str, str], out: Path,
                 seconds: float = 15) -> dict[str, Any]:
    """Worker boots per second under the same churn, bare vs Spyglass (master py-spied)."""
    script = out / "routes.lua"
    script.write_text(LUA)
    rates: dict[str, Any] = {}
    for contender in ("bare", "spyglass"):
        log = out / "logs" / f"restart-rate-{contender}.log"
        server, port, _ = start_server(
            contender, "flask", sink.url, 9, app_env, log, module="routes_app", workers=4,
            extra=["--max-requests", "10", "--max-requests-jitter", "0", "--preload"],
            ready_path="/r0/1")
        prof = out / "profiles" / f"restart-master-{contender}.txt"
        prof.parent.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--nonblocking", "-r",
                                "100", "-d", str(round(seconds)), "-p", str(server.proc.pid),
                                "-o", str(prof)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            b0 = _boots(log)
            res = wrk.run(f"http://127.0.0.1:{port}/", seconds, connections=4, script=script)
            boots = _boots(log) - b0
            spy.wait(60)
        finally:
            server.stop()
        rates[contender] = {"boots_per_s": boots / seconds, "rps": res.rps,
                            "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                            "master_top_self_frames": _top_leaves(prof)}
    return rates


def _top_leaves(path: Path, n: int = 8) -> list[tuple[str, float]]:
    from collections import Counter

    if not path.exists():
        return []
    leaves: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            frames = stack.split(";")
            # the innermost two frames say more than the leaf alone
            leaves[" <- ".join(reversed(frames[-2:]))] += int(count)
    total = sum(leaves.values()) or 1
    return [(k, v / total) for k, v in leaves.most_common(n)]


def run(sink: NginxSink, app_env: dict[str, str], out: Path, restarts: int = 1000,
        budget_s: float = 300) -> dict[str, Any]:
    log = out / "logs" / "metrics-bench.log"
    result: dict[str, Any] = {"workers": 4, "routes": 500, "max_requests": 10}
    result["restart_rate"] = restart_rate(sink, app_env, out)
    server, port, metrics_port = start_server(
        "spyglass", "flask", sink.url, 9, app_env, log, module="routes_app", workers=4,
        extra=["--max-requests", "10", "--max-requests-jitter", "0", "--preload"],
        ready_path="/r0/1")
    assert metrics_port is not None
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in range(500):
            for attempt in range(3):
                try:
                    conn.request("GET", f"/r{n}/1")
                    conn.getresponse().read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    if attempt == 2:
                        raise
        time.sleep(1.0)
        mdir = _metrics_dir(server.proc.pid)
        start_boots = _boots(log)
        result["before"] = {"restarts_so_far": start_boots - 4,
                            **_measure(metrics_port, mdir)}
        script = out / "routes.lua"
        script.write_text(LUA)
        deadline = time.monotonic() + budget_s
        t0 = time.monotonic()
        while _boots(log) - start_boots < restarts and time.monotonic() < deadline:
            try:
                wrk.run(f"http://127.0.0.1:{port}/", 5, connections=4, script=script)
            except (subprocess.CalledProcessError, ValueError):
                pass
        result["churn_seconds"] = time.monotonic() - t0
        result["churn_budget_s"] = budget_s
        time.sleep(1.0)
        mdir = _metrics_dir(server.proc.pid) or mdir
        result["after"] = {"restarts_so_far": _boots(log) - 4,
                           "restarts_during_churn": _boots(log) - start_boots,
                           **_measure(metrics_port, mdir)}
        # Once the owner's background fold (at most every 2 s) has taken in the files the
        # last workers left: the steady state the churn leaves behind.
        t_settle = time.monotonic()
        while _unfolded(mdir) and time.monotonic() - t_settle < 20:
            time.sleep(0.2)
        result["after_settled"] = {"settle_s": time.monotonic() - t_settle,
                                   "unfolded_files_left": _unfolded(mdir),
                                   **_measure(metrics_port, mdir)}
    finally:
        server.stop()
    return result
