"""CPU per request of every thread of one server under wrk, alternating variants.

``run.py`` charges a window's CPU to the whole process tree; this splits it per thread
(``/proc/PID/task/TID/stat``) so the request thread (what bounds a one-worker server's req/s)
and the export threads can be told apart, and it runs the variants of one comparison back to
back, round by round. A variant is a ``run.py`` contender with extra environment settings:

    # what each signal costs the request thread under gunicorn (Flask /work)
    python benchmarks/threads.py --app flask --variants \\
        'bare;spyglass;spyglass SPYGLASS_TRACES=false;spyglass SPYGLASS_LOGS=false;\\
spyglass SPYGLASS_DISABLED_INTEGRATIONS=sqlite3'

    # does work of the same in-process cost slow down differently under a real server?
    python benchmarks/threads.py --app flask --variants \\
        'bare;bare PROBE=compute;bare PROBE=alloc' --module probe_app

``--module probe_app`` serves ``apps/probe_app.py``: the Flask app behind a WSGI layer that
runs a fixed amount of pure-Python work per request (``PROBE=compute``: arithmetic;
``PROBE=alloc``: small dicts, objects and context-variable sets, like a tracer's), and prints
that work's in-process cost so the two can be compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import wrk
from harness.contenders import APPS, split_variant
from harness.overhead import start_server
from harness.procs import tree_pids
from harness.sink import NginxSink
from harness.udpsink import UdpCounter


def _tree_threads(root: int) -> list[tuple[int, str]]:
    """(pid, tid) of every thread of every process in the tree."""
    out = []
    for pid in tree_pids(root):
        try:
            out += [(pid, tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:
            continue
    return out


def thread_cpu(root: int) -> dict[tuple[int, int, str], tuple[float, ...]]:
    """Per thread of every process in the tree: (utime + stime, stime, minor faults,
    context switches), seconds and counts."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[tuple[int, int, str], tuple[float, ...]] = {}
    for pid, tid in _tree_threads(root):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                status = fh.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        switches = sum(int(line.split()[1]) for line in status.splitlines()
                       if line.endswith("ctxt_switches", 0, line.find(":")))
        out[(pid, int(tid), name)] = ((int(fields[11]) + int(fields[12])) / ticks,
                                      int(fields[12]) / ticks, float(fields[7]),
                                      float(switches))
    return out


def _pin_tree(root: int, cpus: set[int]) -> None:
    """Every thread of every process in the tree onto ``cpus`` (threads started later
    inherit their creator's)."""
    for _, tid in _tree_threads(root):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


#: Per variant, per window: µs/req of every other thread of the tree, by thread name.
_OTHERS: dict[str, list[dict[str, float]]] = {}


def window(variant: str, app: str, endpoint: str, module: str | None, app_env: dict[str, str],
           sink: NginxSink, udp: UdpCounter, scratch: Path, duration: float,
           pin: bool = False) -> tuple[float, ...]:
    """(request thread µs/req, whole tree µs/req, req/s, request thread's kernel µs/req,
    minor faults/req, context switches/req) of one start of ``variant``."""
    contender, settings = split_variant(variant)
    env = {**app_env, **settings}
    server, port, _ = start_server(contender, app, sink.url, udp.port, env,
                                   scratch / "server.log", module=module)
    if pin:
        _pin_tree(server.proc.pid, {1})
    try:
        url = f"http://127.0.0.1:{port}{endpoint}"
        wrk.run(url, 2)
        before = thread_cpu(server.proc.pid)
        result = wrk.run(url, duration)
        after = thread_cpu(server.proc.pid)
    finally:
        server.stop()
    n = max(1, result.requests)
    zero = (0.0, 0.0, 0.0, 0.0)
    spent = {k: [a - b for a, b in zip(v, before.get(k, zero), strict=True)]
             for k, v in after.items()}
    main = [sum(v[i] for k, v in spent.items() if k[0] == k[1] == server.worker)
            for i in range(4)]
    others = _OTHERS.setdefault(variant, [])
    by_name: dict[str, float] = {}
    for (pid, tid, name), v in spent.items():
        if not pid == tid == server.worker:
            where = "master" if pid == server.proc.pid else "other"
            key = name if pid == server.worker else f"{name} ({where} process)"
            by_name[key] = by_name.get(key, 0.0) + v[0] / n * 1e6
    others.append(by_name)
    return (main[0] / n * 1e6, sum(v[0] for v in spent.values()) / n * 1e6, result.rps,
            main[1] / n * 1e6, main[2] / n, main[3] / n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--app", choices=("flask", "fastapi"), default="flask")
    p.add_argument("--endpoint", default="/work")
    p.add_argument("--variants", default="bare;spyglass",
                   help="';'-separated: a run.py contender, then optional KEY=VALUE settings")
    p.add_argument("--module", default=None, help="the app module (default: the app's own)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--pin", action="store_true",
                   help="the server's processes on CPU 1, wrk and the sinks on CPU 0 (no "
                        "migration between the two; every variant alike)")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]

    from run import calibrate

    sys.path.insert(0, str(APPS))
    from common import ensure_db

    rows: dict[str, list[tuple[float, ...]]] = {v: [] for v in variants}
    if args.pin:
        os.sched_setaffinity(0, {0})  # inherited by the sinks, wrk and (until pinned) servers
    with tempfile.TemporaryDirectory(prefix="spyglass-threads-") as tmp:
        scratch = Path(tmp)
        db = scratch / "bench.sqlite3"
        ensure_db(str(db))
        app_env = {"BENCH_WORK_ITERS": str(calibrate()), "BENCH_DB": str(db),
                   "BENCH_LOG_FILE": str(scratch / "app.log")}
        sink = NginxSink(scratch / "sink").start()
        udp = UdpCounter()
        try:
            for r in range(args.rounds):
                for variant in variants:
                    rows[variant].append(window(variant, args.app, args.endpoint, args.module,
                                                app_env, sink, udp, scratch, args.duration,
                                                args.pin))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            sink.stop()  # nginx outlived every run before (one master per run, left running)
    base = statistics.median(x[0] for x in rows[variants[0]])
    print(f"{args.app} {args.endpoint}, median of {args.rounds} rounds "
          f"(added: against {variants[0]!r})\n")
    print("| variant | request thread µs/req | added | of it kernel µs | minor faults/req | "
          "context switches/req | whole tree µs/req | req/s |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        main_us, tree_us, rps, sys_us, faults, switches = (
            statistics.median(x[i] for x in rows[variant]) for i in range(6))
        print(f"| {variant} | {main_us:.0f} | {main_us - base:+.0f} | {sys_us:.0f} | "
              f"{faults:.2f} | {switches:.2f} | {tree_us:.0f} | {rps:.0f} |")
    print("\nRequest thread µs/req in each round (each window is a new server process, with "
          "its own memory layout), and its difference from the first variant's in the same "
          "round:\n")
    for variant in variants:
        own = [x[0] for x in rows[variant]]
        paired = [x[0] - b[0] for x, b in zip(rows[variant], rows[variants[0]], strict=True)]
        print(f"- {variant}: {' '.join(f'{v:.0f}' for v in own)}; paired "
              f"{' '.join(f'{d:+.0f}' for d in paired)} (median {statistics.median(paired):+.0f})")
    print("\nThe other threads of each tree, µs per request (median of the rounds):\n")
    for variant in variants:
        windows = _OTHERS.get(variant, [])
        names = sorted({k for w in windows for k in w})
        cells = ", ".join(f"{k} {statistics.median(w.get(k, 0.0) for w in windows):.1f}"
                          for k in names)
        print(f"- {variant}: {cells or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
