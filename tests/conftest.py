"""Shared fixtures: loopback stand-ins for the telemetry backends, and the repo root.

The repository root is put on ``sys.path`` so ``from tests.support.otlp import ...``
works whether pytest is started as ``pytest`` or ``python -m pytest``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.blackhole import BlackHoleServer  # noqa: E402
from tests.support.loki import LokiReceiver  # noqa: E402
from tests.support.otlp import OTLPReceiver  # noqa: E402
from tests.support.procs import cmdline, descendants  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test compiled modules older than their source (setup.py compiles the hot
    path in place: after an edit, the stale extension is what Python would import)."""
    stale = []
    for ext in (REPO_ROOT / "agent" / "spyglass").rglob("*.so"):
        source = ext.with_name(ext.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > ext.stat().st_mtime:
            stale.append(str(source.relative_to(REPO_ROOT)))
    if stale:
        pytest.exit(f"{', '.join(sorted(stale))} changed since the hot path was compiled; "
                    "rebuild it with 'pip install --no-deps -e .' (or delete agent/**/*.so "
                    "to test the pure-Python modules)", returncode=4)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout's root directory."""
    return REPO_ROOT


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    """A started OTLP/HTTP stand-in (not Jaeger); ``.endpoint`` is the OTLP base URL."""
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture
def loki_receiver() -> Iterator[LokiReceiver]:
    """A started Loki push API stand-in (not Loki); ``.endpoint`` is the SPYGLASS_LOKI_URL."""
    with LokiReceiver() as receiver:
        yield receiver


@pytest.fixture
def blackhole() -> Iterator[BlackHoleServer]:
    """A started TCP server that accepts and never answers (a hung backend)."""
    with BlackHoleServer() as server:
        yield server


# Helper processes that a Python test session may legitimately leave to the interpreter.
_ALLOWED_LEFTOVERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    """Fail the session if tests left child processes running (they must kill their groups).

    Leftovers get a few seconds to finish exiting, then are SIGKILLed and reported, so one
    leaky test cannot keep ports or CPU busy for the rest of CI.
    """
    yield
    me = os.getpid()

    def leftovers() -> list[int]:
        return [p for p in descendants(me) if not any(a in cmdline(p) for a in _ALLOWED_LEFTOVERS)]

    try:
        wait_until(lambda: not leftovers(), timeout=5, interval=0.1)
        return
    except AssertionError:
        leaked = {pid: cmdline(pid) for pid in leftovers()}
    for pid in leaked:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if leaked:
        pytest.fail(f"tests leaked child processes (now killed): {leaked}", pytrace=False)
