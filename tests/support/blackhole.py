"""A TCP server that accepts connections and never answers: a hung backend.

Exporters must not block the app when a backend hangs (accepts the connection, then says
nothing). Refused connections are easy to test with ``closed_port()``; a hang needs a
listener that completes the TCP handshake and then stays silent, which is this.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType

__all__ = ["BlackHoleServer"]


class BlackHoleServer:
    """Test stand-in for a hung backend (any TCP/HTTP service that stopped answering).

    Accepts every connection on 127.0.0.1, never reads, writes or closes it until
    ``stop()``. ``connections`` counts accepted connections. ``stop()`` closes every
    socket and joins the single accept thread, so nothing leaks.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("BlackHoleServer not started")
        return int(self._listener.getsockname()[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BlackHoleServer:
        if self._listener is not None:
            raise RuntimeError("BlackHoleServer already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._requested_port))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"BlackHoleServer-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(timeout=0.05):
                    continue
                try:
                    conn, _ = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    break
                with self._lock:
                    self._accepted.append(conn)
                    self.connections += 1

    def stop(self) -> None:
        if self._listener is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for conn in self._accepted:
                with contextlib.suppress(OSError):
                    conn.close()
            self._accepted.clear()
        self._listener = None
        self._thread = None

    def __enter__(self) -> BlackHoleServer:
        if self._listener is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
