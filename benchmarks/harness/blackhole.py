"""A TCP listener that accepts connections and never reads or answers.

It stands in for a backend that has hung (a stuck Collector, a black-holed route): the client
connects fine and then waits until its own timeout. Accepted sockets are kept open until
:meth:`close`.
"""

from __future__ import annotations

import socket
import threading


class BlackHole:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._run, daemon=True, name="blackhole").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
