"""The black hole accepts connections and never answers, so clients time out."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from tests.support.blackhole import BlackHoleServer
from tests.support.procs import http_get
from tests.support.waiting import wait_until


def test_http_client_times_out(blackhole: BlackHoleServer) -> None:
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, http.client.HTTPException, OSError)):
        http_get(f"{blackhole.endpoint}/v1/traces", timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3, elapsed
    wait_until(lambda: blackhole.connections == 1, timeout=2)


def test_connections_stay_open_until_stop() -> None:
    server = BlackHoleServer().start()
    before = {t.ident for t in threading.enumerate()}
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        wait_until(lambda: server.connections == 1, timeout=2)
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # open, silent: neither data nor EOF
    finally:
        server.stop()
    assert sock.recv(1) == b""  # stop() closed the server side: EOF now
    sock.close()
    assert {t.ident for t in threading.enumerate()} <= before
    assert not [t for t in threading.enumerate() if t.name.startswith("BlackHoleServer")]
