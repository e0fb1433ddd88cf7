"""One contender x app: start it, time its startup, load each endpoint, read CPU/RSS/sink."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from harness import wrk
from harness.contenders import ENDPOINTS, launch
from harness.machine import agent_commit
from harness.procs import (
    Server,
    cpu_times,
    free_port,
    http_get,
    leaf_worker,
    loadavg1,
    rss_bytes,
    steal_pct,
    tree_cpu_seconds,
    wait_http,
)
from harness.sink import NginxSink
from harness.udpsink import UdpCounter


def start_server(contender: str, app: str, sink_url: str, statsd_port: int,
                 app_env: dict[str, str], log_path: Path, module: str | None = None,
                 workers: int = 1, extra: list[str] | None = None,
                 ready_path: str = "/hello") -> tuple[Server, int, int | None]:
    port = free_port()
    spec = launch(contender, app, port, sink_url, statsd_port, free_port(), app_env,
                  module=module, workers=workers, extra=extra)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(spec.argv, env=spec.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}{ready_path}", timeout=60, proc=proc, want=200)
    except BaseException:
        proc.kill()
        raise
    startup = time.monotonic() - t0
    return Server(proc, leaf_worker(proc.pid), startup), port, spec.metrics_port


class Scraper:
    """Scrapes Spyglass's /metrics every ``interval`` s, as Prometheus would."""

    def __init__(self, port: int, interval: float = 5.0) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.scrapes = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                status, body = http_get(self.url, timeout=5)
                if status == 200:
                    self.scrapes += 1
                    self.bytes += len(body)
            except OSError:
                pass


def measure(contender: str, app: str, round_no: int, sink: NginxSink, udp: UdpCounter,
            app_env: dict[str, str], out: Path, duration: float, warmup: float,
            connections: int, endpoints: tuple[str, ...] = ENDPOINTS) -> dict[str, Any]:
    sink.reset()
    udp.take()
    server, port, metrics_port = start_server(
        contender, app, sink.url, udp.port, app_env,
        out / "logs" / f"r{round_no}-{app}-{contender}.log")
    result: dict[str, Any] = {"round": round_no, "app": app, "contender": contender,
                              "startup_s": server.startup_s, "endpoints": {},
                              "agent_commit": agent_commit()}
    scrapes = 0
    try:
        for path in endpoints:
            url = f"http://127.0.0.1:{port}{path}"
            wrk.run(url, warmup, connections=connections)
            cpu0 = tree_cpu_seconds(server.proc.pid)
            machine0 = cpu_times()
            if metrics_port is not None:
                with Scraper(metrics_port) as scraper:
                    res = wrk.run(url, duration, connections=connections)
                scrapes += scraper.scrapes
            else:
                res = wrk.run(url, duration, connections=connections)
            cpu1 = tree_cpu_seconds(server.proc.pid)
            machine1 = cpu_times()
            row = res.to_dict()
            row["cpu_us_per_req"] = (cpu1 - cpu0) / max(1, res.requests) * 1e6
            row["rss_mib"] = rss_bytes(server.worker) / 2**20
            row["loadavg1"] = loadavg1()
            row["steal_pct"] = steal_pct(machine0, machine1)
            result["endpoints"][path] = row
    finally:
        server.stop()
    time.sleep(0.3)
    result["sink"] = sink.counts()
    if contender == "ddtrace":
        result["sink"]["udp:dogstatsd"] = udp.take()
    if metrics_port is not None:
        result["sink"]["pull:/metrics scrapes"] = {"requests": scrapes, "bytes": 0,
                                                   "non_2xx": 0}
    return result
