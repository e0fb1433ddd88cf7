"""sqlite3 statements become CLIENT spans and db_client metrics, with the app's sqlite3 intact.

Runs a real app process under ``spyglass run`` (the integration patches ``sqlite3.connect``
at import) and decodes what it exports with opentelemetry-proto.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.otlp import OTLPReceiver
from tests.support.procs import run_script_under_agent
from tests.support.prom import parse, value
from tests.support.waiting import free_port

APP = textwrap.dedent('''
    import sqlite3, sys

    class MyConnection(sqlite3.Connection):
        pass

    class MyCursor(sqlite3.Cursor):
        def execute(self, sql, params=()):
            return super().execute(sql, params)

    db = sys.argv[1]
    conn = sqlite3.connect(db, factory=MyConnection)
    assert isinstance(conn, MyConnection), type(conn)
    cur = conn.cursor()
    cur.execute("CREATE TABLE t (id INTEGER, secret TEXT)")
    cur.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    conn.execute("INSERT INTO t VALUES (3, 'hunter2')")
    mine = conn.cursor(MyCursor)
    assert isinstance(mine, MyCursor), type(mine)
    assert mine.execute("SELECT count(*) FROM t WHERE id > ?", (0,)).fetchone() == (3,)
    try:
        conn.execute("SELECT * FROM missing")
    except sqlite3.OperationalError:
        pass
    else:
        raise SystemExit("expected an error")
    conn.executescript("CREATE TABLE u (x); DROP TABLE u;")
    plain = sqlite3.connect(":memory:")
    assert plain.execute("select 41 + 1").fetchone() == (42,)
    print("ok", flush=True)

    # This process's db_client_operation_duration series, from its own /metrics endpoint.
    import os, time, urllib.request
    deadline = time.monotonic() + 10
    while True:
        try:
            url = f"http://127.0.0.1:{os.environ['SPYGLASS_METRICS_PORT']}/metrics"
            text = urllib.request.urlopen(url, timeout=2).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    print(text, flush=True)
''')


def test_statements_become_scrubbed_client_spans(tmp_path: Path,
                                                 otlp_receiver: OTLPReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "SPYGLASS_LOGS": "false",
           "SPYGLASS_METRICS_PORT": str(free_port())}
    done = run_script_under_agent(APP, tmp_path, env, str(tmp_path / "db.sqlite3"),
                                  service_name="sqlite-app")
    assert done.returncode == 0 and done.stdout.startswith("ok\n"), (done.stdout, done.stderr)
    # One duration observation per statement, by operation (the sqlite3 integration records
    # them itself: tracing.self_recording_tracer).
    families = parse(done.stdout.split("\n", 1)[1])
    counts = {op: value(families, "db_client_operation_duration_seconds_count",
                        db_system_name="sqlite", db_operation_name=op)
              for op in ("CREATE", "INSERT", "SELECT")}
    assert counts == {"CREATE": 2, "INSERT": 2, "SELECT": 3}, counts
    spans = otlp_receiver.wait_for_spans(lambda s: s.scope == "spyglass.sqlite3", count=7)
    assert sorted(s.name for s in spans) == [
        "CREATE", "CREATE", "INSERT", "INSERT", "SELECT", "SELECT", "SELECT"]
    texts = {s.attributes.get("db.query.text") for s in spans}
    assert "INSERT INTO t VALUES (?, ?)" in texts
    # The literal is scrubbed: the password-like value never leaves the process.
    assert "INSERT INTO t VALUES (?, ?)" in texts
    assert not any("hunter2" in str(s.attributes) for s in spans)
    for span in spans:
        assert span.kind == "CLIENT" and span.attributes["db.system.name"] == "sqlite"
    failed = [s for s in spans if s.status_code == "ERROR"]
    assert len(failed) == 1 and failed[0].attributes["error.type"] == "OperationalError"
    assert any(s.attributes.get("db.namespace", "").endswith("db.sqlite3") for s in spans)
