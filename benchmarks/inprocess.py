"""Where Spyglass's per-request CPU goes, measured inside one process.

``run.py`` measures whole servers under wrk, where the machine's noise (±100 µs per request
on a shared 2-core VM) hides anything smaller than the agent's total. This script drives the
benchmark apps' own handlers directly: the FastAPI app through the ASGI callable uvicorn
would call (wrapped the way Spyglass's uvicorn hook wraps it), the Flask app through the WSGI
callable gunicorn's sync worker would call. No sockets, no wrk, no HTTP parsing: what is left
is the app plus the agent, and the agent's parts are switched off one at a time, each variant
in a fresh process:

- ``bare``: no agent;
- ``spyglass``: everything on (traces always_on to OTLP, logs to Loki, metrics);
- ``pure-python``: the same, with the modules ``setup.py`` compiles imported from their
  ``.py`` source (what a ``SPYGLASS_COMPILE=0`` build runs);
- ``interpreted-async``: the same, with only the ASGI layers (``spyglass.server``, whose
  ``asgi_call`` is a coroutine, and the Starlette/FastAPI layer) imported from source: does
  a mypyc-compiled coroutine cost more than an interpreted one where it awaits the app's?
- ``no-server-span``: neither the server hook's nor the framework's layer wraps the request
  (FastAPI's native telemetry stays off, as Spyglass turns it off);
- ``no-db-span``: ``sqlite3.connect`` unpatched;
- ``no-log-capture``: the ``logging`` tap removed;
- ``no-export``: spans and log lines are still made and encoded, but never queued, so the
  export threads never run;
- ``no-send``: queued and drained by the export threads, but nothing is uploaded: what the
  uploads cost beyond handing the items over;
- ``drop-on-main``: queued, and each full batch dropped by the request thread itself: no
  export thread ever touches an item;
- ``batch-512``: uploads of 512 from a queue of 2048 (the SDK's sizes) instead of 2048 of
  8192;
- ``sync-export``: queued as usual, but each full batch is encoded and uploaded on the
  request thread instead of an export thread (not a mode Spyglass has: an upload would block
  the request); against ``spyglass`` it shows what handing the work to another thread costs
  beyond the work itself.

The CPU of the main thread (``time.thread_time``) is what bounds a one-worker server's
throughput; the process's CPU adds the export threads. Each variant's figure is the median
over rounds of the fastest of ``--reps`` windows. Exports go to an nginx sink on loopback
(``harness/sink.py``), as in ``run.py``.

    python benchmarks/inprocess.py --app fastapi --endpoint /work --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "spyglass", "pure-python", "interpreted-async", "no-server-span",
            "no-db-span", "no-log-capture", "no-export", "no-send", "drop-on-main",
            "batch-512", "sync-export")

_CHILD = r'''
import io, json, os, resource, sys, time
variant, app_name, endpoint = sys.argv[1:4]
n, reps, evict_kib = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
_src = bytearray(os.urandom(evict_kib * 1024))
_dst = bytearray(len(_src))
def evict():
    # Between requests, stream a buffer larger than L2 through the core, as a real server's
    # socket, parsing and other work does: the next request finds the agent's code and data
    # in no cache nearer than L3 (bare pays the same copy).
    _dst[:] = _src
sys.path.insert(0, os.environ["BENCH_APPS"])
if variant in ("pure-python", "interpreted-async"):
    # The modules setup.py compiles (or only the ASGI layers), imported from their .py
    # source instead.
    import importlib.abc, importlib.machinery, importlib.util
    ONLY = (("spyglass.server", "spyglass.integrations.starlette")
            if variant == "interpreted-async" else None)

    class SourceFirst(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if not name.startswith("spyglass.") or (ONLY and name not in ONLY):
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or not (spec.origin or "").endswith(".so"):
                return spec
            folder, base = os.path.split(spec.origin)
            return importlib.util.spec_from_file_location(
                name, os.path.join(folder, base.split(".", 1)[0] + ".py"))

    sys.meta_path.insert(0, SourceFirst())
if variant != "bare":
    from spyglass.bootstrap import start
    start()
    from spyglass import tracing
    from spyglass.logs import loki
    if variant == "no-export":
        tracing.EXPORT.worker.put = lambda item: None
        loki._pusher.worker.put = lambda item: None
    if variant == "no-send":
        # Queued and drained by the export threads as usual, but nothing is joined,
        # compressed or uploaded: what the uploads cost beyond the hand-off.
        tracing.EXPORT.worker._send = lambda batch: True
        loki._pusher.worker._send = lambda batch: True
    if variant == "drop-on-main":
        # Queued as usual, but the request thread itself drops each full batch: no export
        # thread touches an item, so items are made and freed on the same core.
        for w in (tracing.EXPORT.worker, loki._pusher.worker):
            def put(item, w=w):
                w._queue.append(item)
                if len(w._queue) >= w._max_batch:
                    w._queue.clear()
            w.put = put
    if variant == "batch-512":
        # The SDK's batch and queue sizes (512 of 2048), Spyglass's before session 12.
        for w in (tracing.EXPORT.worker, loki._pusher.worker):
            w._max_batch = w._wake_at = 512
            w._max_queue = 2048
    if variant == "sync-export":
        # Not a mode Spyglass has (an upload would block the request): each full batch is
        # encoded and uploaded on the request thread, to measure what the export threads cost
        # beyond the work they do.
        for w in (tracing.EXPORT.worker, loki._pusher.worker):
            def put(item, w=w):
                w._queue.append(item)
                if len(w._queue) >= w._max_batch:
                    w._drain(None)
            w.put = put
if variant == "no-db-span":
    import sqlite3
    sqlite3.connect = sqlite3.connect.__wrapped__
if variant == "no-log-capture":
    import logging
    logging.Logger.callHandlers = logging.Logger.callHandlers.__wrapped__

if app_name == "fastapi":
    import asyncio
    import uvicorn
    config = uvicorn.Config("fastapi_app:app", access_log=False)
    config.load()
    app = config.loaded_app  # wrapped by Spyglass's uvicorn hook unless bare
    if variant == "no-server-span":
        from fastapi import FastAPI
        from starlette.applications import Starlette
        app = app.app
        Starlette.__call__ = Starlette.__call__.__wrapped__
        native = FastAPI.__call__.__wrapped__
        async def without_span(self, scope, receive, send):
            scope.setdefault("fastapi.telemetry", None)  # what Spyglass does, minus the span
            await native(self, scope, receive, send)
        FastAPI.__call__ = without_span
    headers = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def one():
        sent = []
        async def send(message):
            sent.append(message)
        if evict_kib:
            evict()
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
                   "scheme": "http", "method": "GET", "root_path": "", "path": endpoint,
                   "raw_path": endpoint.encode(), "query_string": b"", "headers": headers,
                   "state": {}}, receive, send)
        assert sent[0]["status"] == 200, sent[0]
    async def window(count):
        for _ in range(count):
            await one()
    loop = asyncio.new_event_loop()
    run = lambda count: loop.run_until_complete(window(count))
else:
    from flask_app import app
    if variant == "no-server-span":
        import flask
        flask.Flask.__call__ = flask.Flask.__call__.__wrapped__  # Spyglass's Flask layer
    elif variant != "bare":
        from spyglass import server
        app = server.WSGIMiddleware(app)  # what Spyglass's gunicorn hook installs
    def one():
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": endpoint, "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
                   "wsgi.version": (1, 0), "wsgi.multithread": False,
                   "wsgi.multiprocess": False, "wsgi.run_once": False,
                   "HTTP_HOST": "127.0.0.1:8080", "HTTP_USER_AGENT": "wrk",
                   "HTTP_ACCEPT": "*/*", "REMOTE_ADDR": "127.0.0.1"}
        status = []
        if evict_kib:
            evict()
        body = app(environ, lambda s, h, e=None: status.append(s))
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()
        assert status[0].startswith("200"), status
    def run(count):
        for _ in range(count):
            one()

run(300)
best_main = best_proc = float("inf")
for _ in range(reps):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.thread_time()
    run(n)
    t1 = time.thread_time()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    best_main = min(best_main, (t1 - t0) / n * 1e6)
    proc = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    best_proc = min(best_proc, proc / n * 1e6)
print(json.dumps({"main_us": best_main, "process_us": best_proc}))
'''


def _one(variant: str, app: str, endpoint: str, requests: int, reps: int, env: dict[str, str],
         evict_kib: int = 0) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _CHILD, variant, app, endpoint, str(requests),
                          str(reps), str(evict_kib)],
                         env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"inprocess: variant {variant} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("fastapi", "flask"), default="fastapi")
    parser.add_argument("--endpoint", default="/work")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="requests per window")
    parser.add_argument("--reps", type=int, default=5, help="windows per variant and round")
    parser.add_argument("--work-iters", type=int, default=0,
                        help="the /work CPU burn's iterations (default: run.py's calibration)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--evict-kib", type=int, default=0,
                        help="copy a buffer this large before each request (every variant), "
                             "so the request starts with L1/L2 caches cold as under a real "
                             "server; 0: off")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from harness.procs import free_port
    from harness.sink import NginxSink
    from run import calibrate

    iters = args.work_iters or calibrate()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown --variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="spyglass-inprocess-") as tmp:
        sink = NginxSink(Path(tmp) / "sink")
        sink.start()
        try:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("OTEL_", "SPYGLASS_")) and k != "PYTHONPATH"}
            env.update(BENCH_APPS=str(HERE / "apps"), BENCH_WORK_ITERS=str(iters),
                       BENCH_LOG_FILE=str(Path(tmp) / "app.log"),
                       BENCH_DB=str(Path(tmp) / "bench.sqlite3"),
                       OTEL_EXPORTER_OTLP_ENDPOINT=sink.url, SPYGLASS_LOKI_URL=sink.url,
                       OTEL_TRACES_SAMPLER="always_on", SPYGLASS_SERVICE_NAME="bench-inprocess",
                       SPYGLASS_METRICS_PORT=str(free_port()))
            sys.path.insert(0, str(HERE / "apps"))
            import common

            common.ensure_db(env["BENCH_DB"])
            results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for r in range(args.rounds):
                for variant in variants:
                    results[variant].append(_one(variant, args.app, args.endpoint,
                                                 args.requests, args.reps, env,
                                                 args.evict_kib))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            sink.stop()
    summary = {v: {k: statistics.median(x[k] for x in rs) for k in ("main_us", "process_us")}
               for v, rs in results.items()}
    evicted = f", {args.evict_kib} KiB evicted per request" if args.evict_kib else ""
    print(f"{args.app} {args.endpoint} (work iters {iters}{evicted}), "
          f"median of {args.rounds} rounds\n")
    print("| variant | main thread µs/req | process µs/req | main vs spyglass |")
    print("|---|---|---|---|")
    full = summary.get("spyglass", {}).get("main_us")
    for v, s in summary.items():
        delta = f"{s['main_us'] - full:+.1f}" if full is not None and v != "spyglass" else "-"
        print(f"| {v} | {s['main_us']:.1f} | {s['process_us']:.1f} | {delta} |")
    if args.json:
        args.json.write_text(json.dumps({"app": args.app, "endpoint": args.endpoint,
                                         "work_iters": iters, "rounds": results,
                                         "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
