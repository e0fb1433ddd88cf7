"""Instructions per request under callgrind: the agent's CPU work without the VM's noise.

Wall-clock and CPU-time measurements on a shared 2-core VM swing by tens of µs between runs;
instruction counts do not. This runs ``inprocess.py``'s driver (the app's handler called in
one process, a variant per process) under ``valgrind --tool=callgrind`` twice, for ``N1`` and
``N2`` requests, and reports ``(Ir(N2) - Ir(N1)) / (N2 - N1)``: the per-request count, with
startup cancelled out, for the main thread (what bounds a one-worker server's req/s) and for
all threads (the export threads' share varies with how full each upload is, which callgrind's
slowdown changes). Instructions are not time (cache misses are free here), so read them
next to ``inprocess.py``'s timings, not instead of them.

    apt-get install -y valgrind
    python benchmarks/instructions.py --app fastapi --variants bare,spyglass,pure-python

Each variant takes about a minute. ``--keep DIR`` keeps the callgrind files for
``callgrind_annotate --inclusive=yes``.

``--server`` counts the real server instead: the contenders of ``run.py`` (``bare``,
``spyglass``, ``spyglass-pure``) started as the benchmark starts them, gunicorn's worker or
uvicorn under callgrind (``--trace-children=yes``), driven by N1 and then N2 sequential HTTP
requests after 50 warm-up ones; the count is that process's main thread. It answers whether
the agent runs more code under a real server than in the in-process driver (it does not:
RESULTS.md).

    python benchmarks/instructions.py --server --app flask --variants bare,spyglass

As in ``threads.py``, a ``--server`` variant may carry settings after the contender
(``'bare,spyglass SPYGLASS_LOGS=false'``): what one signal, or the agent with every signal
off, adds in instructions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: str hashes are randomised per process, and with them how often dict lookups collide: the
#: same build counted up to ~10 k instructions per request apart between runs. A fixed seed
#: makes two runs of one build count the same, so a change's own effect can be read off.
_HASH_SEED = "0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("fastapi", "flask"), default="fastapi")
    parser.add_argument("--endpoint", default="/work")
    parser.add_argument("--variants", default="bare,spyglass,pure-python")
    parser.add_argument("--requests", default="100,300", help="N1,N2")
    parser.add_argument("--work-iters", type=int, default=400,
                        help="the /work CPU burn's iterations (fixed: counts must compare)")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files here")
    parser.add_argument("--server", action="store_true",
                        help="count a real gunicorn/uvicorn worker (variants: run.py contenders)")
    parser.add_argument("--cache-sim", action="store_true",
                        help="with --server: also simulate this machine's L1 and L2 caches "
                             "(L2 as callgrind's last level) and count the misses per request")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE / "apps"))
    if args.server:
        return _server_main(parser, args)
    import inprocess
    from harness.procs import free_port

    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(inprocess.VARIANTS)
    if unknown:
        parser.error(f"unknown --variants {sorted(unknown)}; choose from "
                     f"{', '.join(inprocess.VARIANTS)}")
    n1, n2 = _counts(args)
    # One window, no warm-up: the N-difference cancels everything that is not per request.
    child = inprocess._CHILD.replace("run(300)\n", "").replace(
        "for _ in range(reps):", "for _ in range(1):")
    python = os.path.realpath(sys.executable)  # the interpreter itself, not a pyenv shim
    with _workspace(args) as (tmp, out_dir, sink):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OTEL_", "SPYGLASS_")) and k != "PYTHONPATH"}
        env.update(BENCH_APPS=str(HERE / "apps"), BENCH_WORK_ITERS=str(args.work_iters),
                   BENCH_LOG_FILE=f"{tmp}/app.log", BENCH_DB=f"{tmp}/bench.sqlite3",
                   OTEL_EXPORTER_OTLP_ENDPOINT=sink.url, SPYGLASS_LOKI_URL=sink.url,
                   OTEL_TRACES_SAMPLER="always_on", SPYGLASS_SERVICE_NAME="bench-ir",
                   PYTHONHASHSEED=_HASH_SEED)
        print(f"{args.app} {args.endpoint}: callgrind instructions per request "
              f"(N = {n1} and {n2})\n\n| variant | main thread Ir/request | vs bare | "
              "all threads Ir/request | vs bare |\n|---|---|---|---|---|")
        base: tuple[float, float] | None = None
        for variant in variants:
            counts = []
            for n in (n1, n2):
                out = f"{out_dir}/callgrind.{args.app}.{variant}.{n}"
                run = subprocess.run(
                    ["valgrind", "--tool=callgrind", "--separate-threads=yes",
                     f"--callgrind-out-file={out}",
                     python, "-c", child, variant, args.app, args.endpoint, str(n), "1", "0"],
                    env=dict(env, SPYGLASS_METRICS_PORT=str(free_port())),
                    capture_output=True, text=True, timeout=1800)
                found = re.search(r"Collected : (\d+)", run.stderr)
                if run.returncode != 0 or not found:
                    raise SystemExit(f"instructions: {variant} failed:\n{run.stderr[-2000:]}")
                counts.append((_main_thread_ir(out), int(found.group(1))))
            main_ir = (counts[1][0] - counts[0][0]) / (n2 - n1)
            all_ir = (counts[1][1] - counts[0][1]) / (n2 - n1)
            if variant == "bare":
                base = (main_ir, all_ir)
            cells = [f"{main_ir:,.0f}", "-", f"{all_ir:,.0f}", "-"]
            if base is not None and variant != "bare":
                cells[1], cells[3] = f"+{main_ir - base[0]:,.0f}", f"+{all_ir - base[1]:,.0f}"
            print(f"| {variant} | {' | '.join(cells)} |", flush=True)
    return 0


def _counts(args: argparse.Namespace) -> tuple[int, int]:
    n1, n2 = (int(n) for n in args.requests.split(","))
    return n1, n2


@contextlib.contextmanager
def _workspace(args: argparse.Namespace) -> Iterator[tuple[str, Path, Any]]:
    """A scratch directory with the apps' database, where callgrind files go (or ``--keep``),
    and the nginx sink the agent exports to."""
    import common

    from harness.sink import NginxSink

    with tempfile.TemporaryDirectory(prefix="spyglass-ir-") as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        common.ensure_db(f"{tmp}/bench.sqlite3")
        sink = NginxSink(Path(tmp) / "sink")
        sink.start()
        try:
            yield tmp, out_dir, sink
        finally:
            sink.stop()


#: ``--server`` takes run.py's contenders; the in-process name of the pure build, ``pure-python``,
#: means the same there.
_SERVER_VARIANTS = {"bare": "bare", "spyglass": "spyglass", "spyglass-pure": "spyglass-pure",
                    "pure-python": "spyglass-pure"}


def _server_main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from harness.contenders import launch, split_variant
    from harness.procs import Server, free_port, http_get, leaf_worker, wait_http

    # A variant is a contender, optionally with settings: "spyglass SPYGLASS_LOGS=false".
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = {v.split()[0] for v in names} - set(_SERVER_VARIANTS)
    if unknown:
        parser.error(f"unknown --variants {sorted(unknown)} for --server; choose from "
                     f"{', '.join(_SERVER_VARIANTS)}")
    n1, n2 = _counts(args)
    extra = ["--timeout", "900"] if args.app == "flask" else []  # gunicorn's worker is slow here
    with _workspace(args) as (tmp, out_dir, sink):
        app_env = {"BENCH_WORK_ITERS": str(args.work_iters), "BENCH_DB": f"{tmp}/bench.sqlite3",
                   "BENCH_LOG_FILE": f"{tmp}/app.log"}
        events = _CACHE_EVENTS if args.cache_sim else ("Ir",)
        print(f"{args.app} {args.endpoint} under its server: callgrind "
              f"{'events' if args.cache_sim else 'instructions'} per request, the worker's "
              f"main thread (N = {n1} and {n2})\n\n"
              f"| contender | {' | '.join(f'{e}/request | vs bare' for e in events)} |\n"
              f"|---|{'---|---|' * len(events)}")
        base: dict[str, float] | None = None
        for variant in dict.fromkeys(names):
            name, settings = split_variant(variant)
            contender = _SERVER_VARIANTS[name]
            env = {**app_env, **settings}
            tag = "-".join([contender, *(f"{k}={v}" for k, v in settings.items())]).replace(
                "/", "_")
            counts = []
            for n in (n1, n2):
                port = free_port()
                spec = launch(contender, args.app, port, sink.url, free_port(), free_port(),
                              env, extra=extra)
                prefix = f"{out_dir}/callgrind.server.{args.app}.{tag}.{n}"
                with open(f"{prefix}.log", "wb") as log:
                    proc = subprocess.Popen(
                        ["valgrind", "--tool=callgrind", "--trace-children=yes",
                         "--separate-threads=yes", f"--callgrind-out-file={prefix}.%p",
                         *(_CACHE_ARGS if args.cache_sim else ()), *spec.argv],
                        env=dict(spec.env, PYTHONHASHSEED=_HASH_SEED), stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True)
                url = f"http://127.0.0.1:{port}"
                server = Server(proc, proc.pid, 0.0)
                try:
                    wait_http(f"{url}/hello", timeout=900, proc=proc, want=200)
                    server.worker = leaf_worker(proc.pid)
                    for _ in range(50 + n):  # 50 warm-up requests, cancelled by the difference
                        status, _body = http_get(url + args.endpoint, timeout=120)
                        if status != 200:
                            raise SystemExit(f"instructions: {variant} answered {status}")
                finally:
                    server.stop(timeout=600)  # callgrind writes its files at exit
                counts.append(_main_thread_events(f"{prefix}.{server.worker}"))
            per = {e: (counts[1][e] - counts[0][e]) / (n2 - n1) for e in events}
            if variant == "bare":
                base = per
            cells = []
            for e in events:
                added = (f"{per[e] - base[e]:+,.0f}" if base is not None and variant != "bare"
                         else "-")
                cells += [f"{per[e]:,.0f}", added]
            print(f"| {variant} | {' | '.join(cells)} |", flush=True)
    return 0


#: ``--cache-sim``: this VM's caches (lscpu: 48 KiB L1d, 32 KiB L1i, 2 MiB L2 per core); a
#: miss of the last level callgrind models (here L2) is an access to the shared L3, about ten
#: times an L2 hit. The kernel's code (the socket path) is not simulated, so these are lower
#: bounds, for bare and agent alike.
_CACHE_ARGS = ("--cache-sim=yes", "--I1=32768,8,64", "--D1=49152,12,64", "--LL=2097152,16,64")
_CACHE_EVENTS = ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")


def _main_thread_events(out: str) -> dict[str, int]:
    """The main thread's event totals (``Ir``, and the cache misses under ``--cache-sim``)."""
    text = Path(f"{out}-01").read_text(errors="replace")
    names = re.search(r"^events: (.+)$", text, re.M)
    found = re.search(r"^(?:summary|totals): ([\d ]+)$", text, re.M)
    if not names or not found:
        raise SystemExit(f"instructions: no totals in {out}-01")
    return dict(zip(names.group(1).split(), (int(v) for v in found.group(1).split()),
                    strict=True))


def _main_thread_ir(out: str) -> int:
    """The main thread's instruction count: what bounds a one-worker server. The export
    threads' share depends on how many items each upload carries, which under callgrind's
    slowdown (and a loaded machine) is not what it is at full speed."""
    text = Path(f"{out}-01").read_text(errors="replace")
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not found:
        raise SystemExit(f"instructions: no totals in {out}-01")
    return int(found.group(1))


if __name__ == "__main__":
    raise SystemExit(main())
