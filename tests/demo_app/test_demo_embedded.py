"""The one command on a machine with no server: a timed run, and stopping by signal.

Nothing is configured but ports and a state directory: SQLite, the in-process cache and a
SQLite-backed broker. Stopping must leave no process behind, which is checked through /proc.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from tests.demo_app.harness import REPO_ROOT, start_demo, stop_demo
from tests.support.procs import AppProcess, cmdline, descendants

pytestmark = pytest.mark.slow

ENDPOINTS = (
    "GET /products",
    "GET /products/{product_id}",
    "POST /cart/items",
    "POST /checkout",
)


def _identity(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc/PID/stat; None once it is gone.

    The start time tells a process from a later one that reuses its pid. A zombie ("Z") has
    exited and only waits for its parent, or for init after a re-parenting, to reap it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _still_running(pid: int, started: str) -> bool:
    now = _identity(pid)
    return now is not None and now[1] == started and now[0] != "Z"


def test_timed_run_exits_0_with_a_summary(embedded_env: dict[str, str | None]) -> None:
    with AppProcess(
        [sys.executable, "-m", "demo_app", "--duration", "8", "--rps", "12"],
        env=embedded_env,
        cwd=REPO_ROOT,
    ) as run:
        assert run.proc is not None
        code = run.proc.wait(timeout=120)
        out = run.stdout()
        assert code == 0, run.describe()
        assert descendants(run.pid) == []
    assert "SQLite (embedded), in-process cache (embedded), SQLite broker (embedded)" in out
    summary = out[out.index("\nsummary\n") :]
    assert re.search(r"endpoint\s+requests\s+errors\s+p50 ms\s+p95 ms\s+p99 ms", summary)
    rows = {
        m["name"].strip(): (int(m["requests"]), int(m["errors"]))
        for m in re.finditer(
            r"^(?P<name>[A-Z]+ \S+|total)\s+(?P<requests>\d+)\s+(?P<errors>\d+)(\s+\d+\.\d){3}$",
            summary,
            re.M,
        )
    }
    for endpoint in ENDPOINTS:
        assert endpoint in rows, summary
    requests, errors = rows["total"]
    assert requests >= 40 and errors == 0, summary
    # Checkouts went through the SQLite broker to the worker, which took payments (on a busy
    # machine the last hop, the receipt, may still be queued when the run ends).
    db = sqlite3.connect(Path(str(embedded_env["DEMO_STATE_DIR"])) / "orders.sqlite3")
    with db:
        statuses = dict(db.execute("SELECT status, count(*) FROM orders_order GROUP BY status"))
    db.close()
    worker_log = (Path(str(embedded_env["DEMO_STATE_DIR"])) / "logs" / "worker.log").read_text()
    assert statuses.get("paid", 0) + statuses.get("receipt_sent", 0) >= 1, (
        f"{statuses}\n{summary}\n{worker_log[-3000:]}"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_everything(embedded_env: dict[str, str | None], sig: int) -> None:
    demo = start_demo(embedded_env)  # runs with load until stopped
    tree = {pid: (ident[1], cmdline(pid)) for pid in demo.pids if (ident := _identity(pid))}
    commands = " ".join(cmd for _, cmd in tree.values())
    for program in ("uvicorn", "gunicorn", "celery"):
        assert program in commands
    assert len(tree) >= 8  # 4 services, gunicorn and celery workers, embedded beat
    code = stop_demo(demo, sig)
    assert code == 0, demo.process.describe()
    alive = {pid: cmd for pid, (start, cmd) in tree.items() if _still_running(pid, start)}
    assert alive == {}
    assert "stopped" in demo.process.stdout()
    assert "killing it" not in demo.process.stdout()  # all stopped gracefully in time
