"""The telemetry sink: Debian's nginx answering ``200 {}`` on every path, on loopback.

Why nginx and not a Python sink: a sink written in Python would compete with the app for the
same two cores and the GIL-free C server keeps its own cost small and flat, whatever an agent
sends. It stands in for every backend at once (OTLP/HTTP receiver, Loki push API, the Datadog
trace agent): they only need a 2xx. ddtrace parses the agent's answer as JSON, hence ``{}``.
Each request is logged (path, Content-Length, status) so the runner can show that every
contender's exports really arrived.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path

from harness.procs import free_port, wait_http

_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    log_format sink '$request_uri $content_length $status';
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        access_log {dir}/access.log sink;
        default_type application/json;
        location / {{ return 200 '{{}}'; }}
    }}
}}
"""


class NginxSink:
    """Start with :meth:`start`; :meth:`counts` reads per-path request and byte totals."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NginxSink:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(_CONF.format(dir=self.dir, port=self.port))
        self.proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/ready", timeout=10)
        wait_for_file(self.dir / "access.log")
        self.reset()
        return self

    def reset(self) -> None:
        """Count only what arrives from now on (remembers the access log's current size;
        reopening the log instead would need nginx's unprivileged worker to reach the
        directory, which fails under a private temporary directory)."""
        log = self.dir / "access.log"
        self._offset = log.stat().st_size if log.exists() else 0

    def counts(self) -> dict[str, dict[str, int]]:
        """{path: {requests, bytes, non_2xx}} since the last :meth:`reset`."""
        out: dict[str, dict[str, int]] = collections.defaultdict(
            lambda: {"requests": 0, "bytes": 0, "non_2xx": 0})
        log = self.dir / "access.log"
        if not log.exists():
            return {}
        with log.open("rb") as f:
            f.seek(getattr(self, "_offset", 0))
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3:  # path, body bytes (Content-Length, "-" if none), status
                continue
            path = parts[0].split("?", 1)[0]
            row = out[path]
            row["requests"] += 1
            row["bytes"] += int(parts[1]) if parts[1].isdigit() else 0
            if not parts[2].startswith("2"):
                row["non_2xx"] += 1
        out.pop("/ready", None)
        return dict(out)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_for_file(path: Path, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
