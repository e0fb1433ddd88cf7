"""gunicorn launch modes under ``spyglass run``: sync, gthread and uvicorn workers, ``-w 1``
and ``-w 4``, ``--preload``, and worker churn (``--max-requests``, SIGKILL).

Every mode takes real requests and is checked on all three signals (see tests/agent).
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest
from tests.agent import (
    ITEM_ROUTE,
    Launched,
    check_telemetry,
    drive,
    launch,
    metrics_dir_of,
    wait_route_counts,
)
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.waiting import free_port, wait_until

N = 20


def _gunicorn(port: int, *args: str, app: str = "flask_app:app",
              inprocess: bool = False) -> list[str]:
    """gunicorn from PATH, or ``python -m gunicorn`` with this interpreter, which
    ``spyglass run`` runs in its own process instead of exec'ing it (spyglass.launch)."""
    program = [sys.executable, "-m", "gunicorn"] if inprocess else ["gunicorn"]
    return [*program, "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3", *args, app]


def _workers(launched: Launched) -> list[int]:
    """The arbiter's direct worker processes."""
    arbiter = launched.proc.pid
    kids = []
    for pid in launched.proc.children():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == arbiter:
            kids.append(pid)
    return kids


MODES = [
    pytest.param(["-w", "1"], "flask_app:app", 1, False, id="sync-w1"),
    pytest.param(["-w", "1"], "flask_app:app", 1, True, id="sync-w1-inprocess"),
    pytest.param(["-w", "4"], "flask_app:app", 4, False, id="sync-w4", marks=pytest.mark.slow),
    pytest.param(["-w", "1", "--threads", "4"], "flask_app:app", 4, True, id="gthread-w1"),
    pytest.param(["-w", "4", "--threads", "4"], "flask_app:app", 4, False, id="gthread-w4",
                 marks=pytest.mark.slow),
    pytest.param(["-w", "1", "-k", "uvicorn.workers.UvicornWorker"], "fastapi_app:app", 4,
                 True, id="uvicorn-w1"),
    pytest.param(["-w", "4", "-k", "uvicorn.workers.UvicornWorker"], "fastapi_app:app", 4,
                 False, id="uvicorn-w4", marks=pytest.mark.slow),
    pytest.param(["-w", "2", "--preload"], "flask_app:app", 2, True, id="sync-preload-w2"),
]


@pytest.mark.parametrize(("args", "app", "concurrency", "inprocess"), MODES)
def test_gunicorn_modes(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver, args: list[str], app: str,
    concurrency: int, inprocess: bool,
) -> None:
    port = free_port()
    launched = launch(_gunicorn(port, *args, app=app, inprocess=inprocess), otlp_receiver,
                      loki_receiver, app_port=port)
    with launched.proc:
        workers = int(args[args.index("-w") + 1])
        wait_until(lambda: len(_workers(launched)) == workers, timeout=20,
                   message=f"{workers} workers")
        ids = list(range(1000, 1000 + N))
        drive(launched.base, ids, concurrency=concurrency)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids)


def _db_files(directory: str) -> list[str]:
    return sorted(f for f in os.listdir(directory) if f.endswith(".db"))


def _files_only_live_or_archive(directory: str, live: set[int]) -> bool:
    for name in _db_files(directory):
        match = re.fullmatch(r"[a-z_]+?_(\d+|archive)\.db", name)
        assert match, f"unexpected file {name} in {directory}"
        if match.group(1) != "archive" and int(match.group(1)) not in live:
            return False
    return True


@pytest.mark.slow
def test_gunicorn_max_requests_churn_and_sigkill(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    """Recycled and killed workers: totals stay exact, the directory does not pile up.

    Recycled workers must also have flushed every span and log line at exit, including a
    batch the export thread had already taken off the queue (``BatchWorker.flush`` waits for
    it; before that fix, 56 of 60 server spans arrived).
    """
    port = free_port()
    launched = launch(
        _gunicorn(port, "-w", "2", "--max-requests", "5", "--max-requests-jitter", "0"),
        otlp_receiver, loki_receiver, app_port=port)
    with launched.proc:
        directory = metrics_dir_of(launched.proc.pid)
        first_workers = set(_workers(launched))
        ids = list(range(2000, 2060))
        drive(launched.base, ids)
        check_telemetry(launched, otlp_receiver, loki_receiver, ids)
        # 60 requests at 5 per worker: at least 10 workers came and went.
        assert not first_workers & set(_workers(launched)), "workers were never recycled"

        # After a scrape (which compacts), only live processes' files and archives remain.
        sent = len(ids)

        def compacted() -> bool:
            wait_route_counts(launched.metrics_url, {(ITEM_ROUTE, "200"): sent})
            live = {launched.proc.pid, *launched.proc.children()}
            return _files_only_live_or_archive(directory, live)

        wait_until(compacted, timeout=10, message="dead workers' files compacted")
        pids = {f.rsplit("_", 1)[1][:-3] for f in _db_files(directory)} - {"archive"}
        assert len(pids) <= 3, f"files of more than arbiter + 2 workers: {_db_files(directory)}"

        # SIGKILL a worker right after its requests were recorded: nothing may be lost.
        victim = _workers(launched)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in _workers(launched) and len(_workers(launched)) == 2,
                   timeout=20, message="gunicorn replaced the killed worker")
        more = list(range(3000, 3010))
        drive(launched.base, more)
        sent += len(more)
        wait_route_counts(launched.metrics_url, {(ITEM_ROUTE, "200"): sent})
        wait_until(compacted, timeout=10, message="killed worker's files compacted")


def test_gunicorn_sighup_reload_keeps_serving_and_counting(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver
) -> None:
    """SIGHUP reaches gunicorn's arbiter (spyglass run execs, so it is the same pid) and
    reloads: new workers replace the old ones, the app keeps answering, and the one /metrics
    keeps the counts of the workers that were reloaded away."""
    port = free_port()
    launched = launch(_gunicorn(port, "-w", "2"), otlp_receiver, loki_receiver, app_port=port)
    with launched.proc:
        wait_until(lambda: len(_workers(launched)) == 2, timeout=20, message="2 workers")
        before = set(_workers(launched))
        first = list(range(7000, 7000 + N))
        drive(launched.base, first)
        wait_route_counts(launched.metrics_url, {(ITEM_ROUTE, "200"): N})
        os.kill(launched.proc.pid, signal.SIGHUP)
        wait_until(lambda: len(_workers(launched)) == 2 and not before & set(_workers(launched)),
                   timeout=30, message="SIGHUP did not replace the workers")
        second = list(range(8000, 8000 + N))
        drive(launched.base, second)
        wait_route_counts(launched.metrics_url, {(ITEM_ROUTE, "200"): 2 * N})
        assert launched.proc.returncode is None
