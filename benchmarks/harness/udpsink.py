"""A UDP socket that counts datagrams: stands in for the DogStatsD listener of a Datadog agent.

ddtrace's runtime metrics go to DogStatsD over UDP, which nginx-light cannot receive; this only
counts what arrives so the results can show that ddtrace's metrics were really sent.
"""

from __future__ import annotations

import socket
import threading


class UdpCounter:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.datagrams = 0
        self.bytes = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="udp-counter")
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            self.datagrams += 1
            self.bytes += len(data)

    def take(self) -> dict[str, int]:
        out = {"requests": self.datagrams, "bytes": self.bytes, "non_2xx": 0}
        self.datagrams = self.bytes = 0
        return out
