"""A small threaded loopback HTTP server base shared by the receiver stand-ins.

The stand-ins (OTLP, Loki) differ only in how they parse and validate a request body;
binding to 127.0.0.1, running ``serve_forever`` on a thread, shutting down without leaking
threads and the context-manager protocol live here once.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["BodyError", "LoopbackHTTPServer", "read_body"]


class BodyError(Exception):
    """A request body that cannot be read; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """Read the request body (Content-Length or chunked) and undo ``Content-Encoding: gzip``."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size_line = handler.rfile.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        body = b"".join(chunks)
    else:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
    encoding = (handler.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise BodyError(400, f"invalid gzip body: {exc}") from exc
    raise BodyError(415, f"unsupported Content-Encoding {encoding!r}")


class _QuietHandler(BaseHTTPRequestHandler):
    """Request handler that logs nothing (pytest would otherwise show every request)."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_plain(self, status: int, text: str = "", content_type: str = "text/plain") -> None:
        payload = text.encode("utf-8")
        self.send_bytes(status, payload, content_type)

    def send_bytes(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if status != 204 and payload:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self.server.owner.handle_get(self)

    def do_POST(self) -> None:
        self.server.owner.handle_post(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: LoopbackHTTPServer


class LoopbackHTTPServer:
    """Base for the HTTP stand-ins: binds 127.0.0.1 (port 0 = pick a free one) on start.

    Subclasses implement ``handle_post`` (and optionally ``handle_get``) taking the
    request handler; ``handler.send_plain``/``send_bytes`` write the answer.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackHTTPServer:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        server = _Server((self.host, self._requested_port), _QuietHandler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Any:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def handle_get(self, handler: _QuietHandler) -> None:
        handler.send_plain(404, "not found\n")

    def handle_post(self, handler: _QuietHandler) -> None:
        handler.send_plain(404, "not found\n")
