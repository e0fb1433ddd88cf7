"""wait_until polls with a deadline; the port helpers give usable loopback ports."""

from __future__ import annotations

import itertools
import socket

import pytest
from tests.support.waiting import closed_port, free_port, wait_until


def test_wait_until_returns_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "done", timeout=5, interval=0.01) == "done"


def test_wait_until_retries_through_exceptions() -> None:
    attempts = itertools.count()

    def flaky() -> int:
        n = next(attempts)
        if n < 2:
            raise ConnectionRefusedError("not yet")
        return n

    assert wait_until(flaky, timeout=5, interval=0.01) == 2


def test_wait_until_reports_last_value_and_exception() -> None:
    with pytest.raises(AssertionError, match=r"queue empty: .*last value: \[\]"):
        wait_until(lambda: [], timeout=0.1, interval=0.02, message="queue empty")

    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(AssertionError, match="last exception: KeyError"):
        wait_until(boom, timeout=0.1, interval=0.02)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen(1)


def test_closed_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError), socket.socket() as sock:
        sock.connect(("127.0.0.1", closed_port()))
