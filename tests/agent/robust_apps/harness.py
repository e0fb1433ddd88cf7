"""Helpers shared by the robustness tests: start the small apps here with or without Spyglass.

``launch`` builds the argv for one server (gunicorn + Flask, uvicorn + FastAPI, or a plain
``python app.py``) so a test can run the very same program under ``spyglass run`` and without
it, and compare what a client sees. Everything binds 127.0.0.1 on ports picked at run time.
"""

from __future__ import annotations

import http.client
import os
import re
import sys
from pathlib import Path

from tests.support.procs import AppProcess, spyglass_argv
from tests.support.prom import parse, scrape, value
from tests.support.waiting import free_port

APPS_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def server_cmd(kind: str, port: int) -> list[str]:
    """The command line of one server kind, listening on ``port``.

    ``gthread`` is gunicorn with threads, which keeps connections alive (fast for bulk
    requests), and with header size limits off so huge headers reach the app; uvicorn's
    limit is raised for the same reason.
    """
    if kind == "gunicorn":
        return [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}",
                "--graceful-timeout", "20", "flask_app:app"]
    if kind == "gthread":
        return [str(BIN / "gunicorn"), "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}",
                "--limit-request-field_size", "100000", "--limit-request-line", "0",
                "flask_app:app"]
    if kind == "uvicorn":
        return [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--h11-max-incomplete-event-size", "131072",
                "fastapi_app:app"]
    if kind == "script":
        return [sys.executable, "flask_app.py", str(port)]
    raise ValueError(kind)


class App:
    """One running app (``agent=False``: the same command without ``spyglass run``)."""

    def __init__(self, kind: str, agent: bool = True, env: dict[str, str | None] | None = None,
                 **opts: object) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        cmd = server_cmd(kind, self.port)
        argv = spyglass_argv(*cmd, metrics_port=self.metrics_port, **opts) if agent else cmd
        base: dict[str, str | None] = {"PYTHONUNBUFFERED": "1"}
        base.update(env or {})
        self.proc = AppProcess(argv, env=base, cwd=APPS_DIR)
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> App:
        self.proc.start()
        self.proc.wait_http(self.base + "/", timeout=30, status=200)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.close()

    def url(self, path: str) -> str:
        return self.base + path

    def metrics(self) -> dict:  # type: ignore[type-arg]
        return parse(scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")[1])

    def metric(self, name: str, **labels: object) -> float:
        return value(self.metrics(), name, **labels)


def worker_pid(app: App) -> int:
    """The pid that serves requests: gunicorn's one worker, else the process itself."""
    kids = app.proc.children()
    return kids[-1] if kids else app.proc.pid


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1)) * 1024


class KeepAlive:
    """One HTTP/1.1 connection reused for many requests (reconnects when the server closes)."""

    def __init__(self, port: int, timeout: float = 5) -> None:
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request("GET", path, headers=headers or {})
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.getheader("Connection", "").lower() == "close" or resp.will_close:
                    self.close()
                return resp.status, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def agent_errors(stderr: str) -> list[str]:
    """Lines of stderr that come from the agent complaining, or any Python traceback."""
    return [line for line in stderr.splitlines()
            if (line.startswith("spyglass") and ("error" in line.lower() or "warning" in
                                                line.lower()))
            or line.startswith("Traceback")]


def env_without_otel() -> dict[str, str | None]:
    """Unset every agent/OTel variable the test runner might have, so defaults apply."""
    return {k: None for k in os.environ if k.startswith(("OTEL_", "SPYGLASS_"))}
