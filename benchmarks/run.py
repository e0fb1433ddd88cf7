"""Overhead benchmark: bare vs OpenTelemetry zero-code vs ddtrace vs Spyglass.

One command runs everything and writes ``results.json`` and ``results.md`` to ``--out``:

    python benchmarks/run.py --rounds 3 --duration 10 --out benchmarks/out/

Contenders are interleaved within each round (bare, otel, ddtrace, spyglass, bare, ...) so that
machine drift hits all alike; each start measures the time to the first 200, each endpoint gets
a ``wrk`` warm-up and then a measured window. See README.md for setup and what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import machine, report
from harness.contenders import APPS, APPS_ALL, CONTENDERS, ENDPOINTS
from harness.overhead import measure
from harness.sink import NginxSink
from harness.udpsink import UdpCounter


def calibrate(target_us: float = 200.0) -> int:
    """Iterations of apps/common.burn that take ``target_us`` of CPU on this machine."""
    sys.path.insert(0, str(APPS))
    from common import burn

    iters = 1000
    best = float("inf")
    for _ in range(20):
        t0 = time.process_time_ns()
        burn(iters)
        best = min(best, (time.process_time_ns() - t0) / 1e3)
    return max(1, round(iters * target_us / best))


def compile_agent() -> None:
    """Write the agent's bytecode, as pip does when it installs a wheel.

    The project is installed editable, and with PYTHONDONTWRITEBYTECODE set (as on the
    machines this runs on) Python would compile every Spyglass module from source at every
    start, while the competitors' wheels were compiled at install: that is ~60 ms of startup
    that no user of an installed Spyglass pays.
    """
    import compileall

    import spyglass

    compileall.compile_dir(str(Path(spyglass.__file__).parent), quiet=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measured window, seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up before each window")
    p.add_argument("--connections", type=int, default=4, help="wrk -c (wrk -t1 always)")
    p.add_argument("--apps", default=",".join(APPS_ALL))
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--endpoints", default=",".join(ENDPOINTS))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--metrics-bench", action="store_true",
                   help="also run the /metrics scrape benchmark (4 workers, 500 routes)")
    p.add_argument("--restarts", type=int, default=1000,
                   help="worker restarts for the /metrics benchmark")
    p.add_argument("--churn-budget", type=float, default=300.0,
                   help="seconds the /metrics benchmark may spend restarting workers")
    p.add_argument("--outage-duration", type=float, default=0.0,
                   help="seconds per outage mode (the issue asks for 300); 0 skips it")
    p.add_argument("--profile-seconds", type=float, default=0.0,
                   help="py-spy record Spyglass's worker this long per endpoint; 0 skips")
    p.add_argument("--nice", type=int, default=-5,
                   help="niceness for the runner and everything it starts (root only), so "
                        "other work on a shared machine disturbs the windows less")
    args = p.parse_args(argv)
    try:
        os.nice(args.nice)
    except OSError:
        print("could not renice; running at the default priority", file=sys.stderr)

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    data: dict[str, object] = json.loads(results_path.read_text()) if (
        args.skip_overhead and results_path.exists()) else {}
    data.setdefault("machine", machine.notes())
    compile_agent()
    iters = calibrate()
    from common import DB_PATH, ensure_db

    db = out / "bench.sqlite3"
    ensure_db(str(db))
    app_env = {"BENCH_WORK_ITERS": str(iters), "BENCH_DB": str(db),
               "BENCH_LOG_FILE": str(out / "app.log")}
    cfg = {**vars(args), "out": str(out), "work_iters": iters,
           "wrk": f"-t1 -c{args.connections} --latency", "db": "sqlite file",
           "default_db_path": DB_PATH}
    data["config" if not args.skip_overhead or "config" not in data else "config_extras"] = cfg
    sink = NginxSink(out / "sink").start()
    udp = UdpCounter()
    try:
        if not args.skip_overhead:
            runs = []
            for r in range(args.rounds):
                for app in args.apps.split(","):
                    for contender in args.contenders.split(","):
                        t = time.monotonic()
                        res = measure(contender, app, r, sink, udp, app_env, out,
                                      args.duration, args.warmup, args.connections,
                                      tuple(args.endpoints.split(",")))
                        runs.append(res)
                        print(f"round {r} {app:8} {contender:9} "
                              + " ".join(f"{e}={v['rps']:.0f}rps/{v['cpu_us_per_req']:.0f}us"
                                         for e, v in res["endpoints"].items())
                              + f" ({time.monotonic() - t:.0f}s)", flush=True)
                        data["runs"] = runs
                        results_path.write_text(json.dumps(data, indent=1, default=str))
        if args.metrics_bench:
            from harness.metrics_bench import run as metrics_run

            data["metrics_bench"] = metrics_run(sink, app_env, out, args.restarts,
                                                args.churn_budget)
            results_path.write_text(json.dumps(data, indent=1, default=str))
        if args.outage_duration > 0:
            from harness.outage import run as outage_run

            data["outage"] = outage_run(sink, app_env, out, args.outage_duration,
                                        args.connections)
            results_path.write_text(json.dumps(data, indent=1, default=str))
        if args.profile_seconds > 0:
            from harness.profile import run as profile_run

            data["profile"] = profile_run(sink, udp, app_env, out, args.profile_seconds,
                                          args.connections)
            results_path.write_text(json.dumps(data, indent=1, default=str))
    finally:
        sink.stop()
    results_path.write_text(json.dumps(data, indent=1, default=str))
    (out / "results.md").write_text(report.render(data))
    print(f"wrote {results_path} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
