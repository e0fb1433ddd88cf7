"""Quick check that the benchmark harness works end to end (no timing assertions).

Starts the nginx sink, then every contender on every app once, requests each endpoint and
checks a 200, and after a short wrk burst checks that the agent's exports reached the sink.
Takes about a minute:

    python benchmarks/smoke.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import wrk
from harness.contenders import APPS, APPS_ALL, CONTENDERS, ENDPOINTS
from harness.overhead import start_server
from harness.procs import http_get
from harness.sink import NginxSink
from harness.udpsink import UdpCounter

EXPECTED = {"otel": ("/v1/traces",), "ddtrace": ("/v0.5/traces", "/v0.4/traces"),
            "spyglass": ("/v1/traces", "/loki/api/v1/push")}


def main() -> int:
    sys.path.insert(0, str(APPS))
    from common import ensure_db

    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        ensure_db(str(out / "db.sqlite3"))
        env = {"BENCH_DB": str(out / "db.sqlite3"), "BENCH_LOG_FILE": str(out / "app.log"),
               "BENCH_WORK_ITERS": "100"}
        sink = NginxSink(out / "sink").start()
        udp = UdpCounter()
        try:
            for app in APPS_ALL:
                for contender in CONTENDERS:
                    sink.reset()
                    server, port, _ = start_server(contender, app, sink.url, udp.port, env,
                                                   out / f"{app}-{contender}.log")
                    try:
                        for ep in ENDPOINTS:
                            status, _ = http_get(f"http://127.0.0.1:{port}{ep}")
                            if status != 200:
                                failures.append(f"{app} {contender} {ep}: HTTP {status}")
                        wrk.run(f"http://127.0.0.1:{port}/work", 2)
                    finally:
                        server.stop()
                    time.sleep(0.5)
                    got = sink.counts()
                    for path in EXPECTED.get(contender, ()):
                        if path in got:
                            break
                    else:
                        if contender in EXPECTED:
                            failures.append(f"{app} {contender}: nothing at "
                                            f"{EXPECTED[contender]}, sink saw {sorted(got)}")
                    print(f"{app:8} {contender:9} startup {server.startup_s:.2f}s "
                          f"sink {sorted(got)}", flush=True)
        finally:
            sink.stop()
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
