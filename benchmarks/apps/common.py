"""What every benchmark app does per request, kept identical across Flask and FastAPI.

``/work`` is meant to look like a real endpoint: one SQL query, one INFO log line and about
200 µs of pure-Python CPU. The database is a SQLite file (not the loopback PostgreSQL): every
contender instruments ``sqlite3`` (Spyglass and OTel via opentelemetry-instrumentation-sqlite3,
ddtrace via its sqlite3 patch), the query costs the same few microseconds on every machine, and
no CPU is spent in a server process outside the measured process tree, so the benchmark needs
nothing beyond Python to reproduce. The CPU burn is a fixed iteration count
(``BENCH_WORK_ITERS``, calibrated once per run by ``run.py`` to ~200 µs) so that every contender
does exactly the same work.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading

WORK_ITERS = int(os.environ.get("BENCH_WORK_ITERS", "400"))
DB_PATH = os.environ.get("BENCH_DB", "/tmp/spyglass-bench.sqlite3")
LOG_FILE = os.environ.get("BENCH_LOG_FILE", "")

logging.basicConfig(level=logging.INFO, filename=LOG_FILE or None,
                    format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("bench.work")
_local = threading.local()


def ensure_db(path: str = DB_PATH) -> None:
    """Create the table once (the runner calls this before any server starts)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)")
        if conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0:
            conn.executemany("INSERT INTO items VALUES (?, ?)",
                             [(i, f"item-{i}") for i in range(1, 1001)])
        conn.commit()
    finally:
        conn.close()


def _conn() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(DB_PATH)
    return conn


def burn(iters: int = WORK_ITERS) -> int:
    """Deterministic pure-Python CPU work (no I/O, no allocation growth)."""
    digest = b"spyglass"
    acc = 0
    for i in range(iters):
        digest = hashlib.blake2s(digest).digest()
        acc += digest[i % 32]
    return acc


def work(item_id: int = 7) -> dict[str, object]:
    # cursor().execute, not the Connection.execute shortcut: opentelemetry-instrumentation-
    # sqlite3 (used by OTel and Spyglass) only traces cursors, ddtrace traces both.
    cur = _conn().cursor()
    cur.execute("SELECT id, name FROM items WHERE id = ?", (item_id,))
    row = cur.fetchone()
    acc = burn()
    log.info("work done for item %s", item_id)
    return {"id": row[0], "name": row[1], "acc": acc}
