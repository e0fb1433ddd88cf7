"""One kept-open HTTP connection per exporter, used from its export thread only.

Why not ``requests`` (what the OTLP exporter uses) or a new ``http.client`` connection per
upload: the export thread's CPU is the app's CPU, and a TCP handshake plus ``requests``'
session machinery cost more per upload than encoding a batch of spans (benchmarks/RESULTS.md).
``http.client`` is the standard library; a connection is reused while the backend keeps it
open, and re-opened once when a kept-open connection turns out to be stale.

Fork safety: a forked child must never write on its parent's socket, so the connection is
forgotten (not closed: closing a shared socket is harmless, a ``shutdown`` would not be) in
the child, which opens its own on first use.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from spyglass import forksafe

if TYPE_CHECKING:
    import http.client
    import ssl

__all__ = ["ExportHTTPError", "Poster"]



def _stale() -> tuple[type[BaseException], ...]:
    """Errors of a kept-open connection the backend closed while idle. ``http.client`` (and
    ``ssl``) are imported by the export thread at its first upload, not at the app's start:
    with the ``email`` modules it pulls in, that is ~15-25 ms of every app's startup."""
    import http.client

    return (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError,
            ConnectionResetError, ConnectionAbortedError)


_MAX_RESPONSE = 64 * 1024


class ExportHTTPError(Exception):
    """The backend answered, but not with a 2xx."""


class Poster:
    """POSTs bodies to one URL over a kept-open connection; ``post`` raises on any failure."""

    def __init__(self, url: str, timeout: float, headers: Mapping[str, str] | None = None,
                 compression: str = "none", ca_file: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None) -> None:
        parts = urlsplit(url)
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._compression = compression
        self._headers = dict(headers or {})
        if compression in ("gzip", "deflate"):
            self._headers["Content-Encoding"] = compression
        self._context: ssl.SSLContext | None = None
        if self._https:
            import ssl

            self._context = ssl.create_default_context(cafile=ca_file)
            if client_cert:
                self._context.load_cert_chain(client_cert, client_key)
        self._conn: http.client.HTTPConnection | None = None
        forksafe.register_after_in_child(self._forget)

    def _forget(self) -> None:
        self._conn = None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def _connect(self) -> http.client.HTTPConnection:
        import http.client

        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def compress(self, body: bytes) -> bytes:
        if self._compression == "gzip":
            # mtime=0: no timestamp in the header, and Python 3.11+ then compresses in one
            # zlib call, which releases the GIL while it runs.
            return gzip.compress(body, compresslevel=1, mtime=0)
        if self._compression == "deflate":
            return zlib.compress(body, 1)
        return body

    def post(self, body: bytes, content_type: str) -> None:
        """Send one upload; raises ``ExportHTTPError`` or ``OSError`` if it did not land."""
        body = self.compress(body)
        headers = {**self._headers, "Content-Type": content_type}
        reused = self._conn is not None
        try:
            self._post_once(body, headers)
        except _stale():
            self.close()
            if not reused:
                raise
            # The backend closed the kept-open connection while it was idle: one fresh try.
            self._post_once(body, headers)

    def _post_once(self, body: bytes, headers: dict[str, str]) -> None:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            # Bounded: a backend's answer is never allowed to grow the app's memory.
            response.read(_MAX_RESPONSE)
            status = response.status
            if response.will_close or not response.isclosed():
                self.close()
        except BaseException:
            self.close()
            raise
        if not 200 <= status < 300:
            raise ExportHTTPError(f"{self.url} answered HTTP {status}")


def otlp_poster(url: str, timeout: float, signal: str = "TRACES") -> Poster:
    """A poster configured by the standard ``OTEL_EXPORTER_OTLP_[TRACES_]*`` variables.

    Headers, compression and TLS files are read the way the SDK's OTLP/HTTP exporters read
    them: the signal-specific variable first, then the generic one.
    """
    import os

    from opentelemetry.util.re import parse_env_headers

    def env(name: str) -> str | None:
        return os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_{name}") or \
            os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")

    compression = (env("COMPRESSION") or "none").strip().lower()
    if compression not in ("gzip", "deflate", "none"):
        compression = "none"
    headers = dict(parse_env_headers(env("HEADERS") or "", liberal=True))
    headers.setdefault("User-Agent", "spyglass")
    return Poster(url, timeout, headers=headers, compression=compression,
                  ca_file=env("CERTIFICATE"), client_cert=env("CLIENT_CERTIFICATE"),
                  client_key=env("CLIENT_KEY"))
