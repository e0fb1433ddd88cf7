"""Runtime fault switches shared by all processes of one service.

A service's switches live in one small JSON file in the demo's state directory. Every process
of the service (gunicorn workers, Celery pool children) reads the file when it changes, so a
switch flipped through one worker's admin endpoint reaches all of them. The worker has no HTTP
server: ``python -m demo_app fault worker ...`` writes its file directly, which needs no broker
feature (the embedded SQLite broker has no broadcast for remote control either).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo_app import config

HTTP_SERVICES = ("storefront", "orders", "payments")


@dataclass(frozen=True)
class FaultKind:
    """A fault that can be switched on: where it applies, its default value, what it does."""

    services: tuple[str, ...]
    default: float
    help: str


FAULTS: dict[str, FaultKind] = {
    "error_rate": FaultKind(
        HTTP_SERVICES, 1.0, "fraction VALUE of requests raise InjectedFault: HTTP 500 + error log"
    ),
    "latency": FaultKind(
        HTTP_SERVICES, 0.5, "add VALUE seconds to every request, or only to --route TEMPLATE"
    ),
    "hang": FaultKind(
        HTTP_SERVICES,
        300.0,
        "requests hang until switched off or VALUE s pass (on orders: storefront times out)",
    ),
    "slow_sql": FaultKind(("orders",), 1.0, "each request runs a SQL query taking ~VALUE seconds"),
    "cpu_heavy": FaultKind(("storefront",), 20.0, "/recommendations does VALUE times more work"),
    "payments_unreachable": FaultKind(
        ("worker",), 1.0, "the worker calls payments at a closed port (connection refused)"
    ),
    "task_failure_rate": FaultKind(
        ("worker",), 1.0, "fraction VALUE of take_payment tasks raise InjectedFault"
    ),
}

# Routes that faults never touch, so a broken service can still be inspected and repaired.
EXEMPT_PREFIXES = ("/_admin", "/healthz")


class InjectedFault(RuntimeError):
    """Raised on purpose by the error-rate faults; a real exception with a real traceback."""


@dataclass(frozen=True)
class ActiveFault:
    """A switched-on fault: its value and, for latency, the route template it is limited to."""

    value: float
    route: str | None = None


class FaultStore:
    """The fault switches of one service, kept in ``<state dir>/faults-<service>.json``."""

    def __init__(self, service: str, path: Path | None = None) -> None:
        self.service = service
        self.path = path or config.state_dir() / f"faults-{service}.json"
        self._seen: tuple[int, int, int] | None = None
        self._active: dict[str, ActiveFault] = {}

    def active(self) -> dict[str, ActiveFault]:
        """Current switches; re-reads the file only when it was replaced or changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._active = None, {}
            return self._active
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # every write is a new inode
        if key != self._seen:
            try:
                raw = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError):
                return self._active  # a half-written file: keep the last good state
            self._active = {name: ActiveFault(**spec) for name, spec in raw.items()}
            self._seen = key
        return self._active

    def get(self, name: str) -> ActiveFault | None:
        """The switched-on fault ``name``, or None."""
        return self.active().get(name)

    def set(
        self, name: str, enabled: bool, value: float | None = None, route: str | None = None
    ) -> dict[str, ActiveFault]:
        """Switch fault ``name`` on or off; raises ValueError for a fault this service lacks."""
        kind = FAULTS.get(name)
        if kind is None or self.service not in kind.services:
            known = sorted(n for n, k in FAULTS.items() if self.service in k.services)
            raise ValueError(f"{self.service} has no fault {name!r}; known: {', '.join(known)}")
        with self._locked():
            try:
                state: dict[str, Any] = json.loads(self.path.read_text() or "{}")
            except FileNotFoundError:
                state = {}
            if enabled:
                state[name] = {"value": kind.default if value is None else value, "route": route}
            else:
                state.pop(name, None)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.path)
        return self.active()

    def clear(self) -> None:
        """Switch every fault off (the launcher does this at start)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def as_json(self) -> dict[str, dict[str, Any]]:
        """Switches as a JSON-ready dict, for the admin endpoints."""
        return {name: {"value": f.value, "route": f.route} for name, f in self.active().items()}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # What a request should suffer -----------------------------------------------------------

    def fails(self, name: str = "error_rate") -> bool:
        """True when a rate fault is on and this request is picked to fail."""
        fault = self.get(name)
        return fault is not None and random.random() < fault.value

    def delay(self, route: str) -> float:
        """Seconds of added latency for ``route`` (a route template, e.g. /products/{id})."""
        fault = self.get("latency")
        if fault is None or (fault.route and fault.route != route):
            return 0.0
        return fault.value


def is_exempt(path: str) -> bool:
    """Admin and health routes stay healthy whatever is switched on."""
    return path.startswith(EXEMPT_PREFIXES)


def apply_sync(store: FaultStore, route: str) -> None:
    """Latency, hang and error faults for a request of a synchronous (WSGI) service."""
    if is_exempt(route):
        return
    time.sleep(store.delay(route))
    hang = store.get("hang")
    if hang is not None:
        deadline = time.monotonic() + hang.value
        while store.get("hang") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    if store.fails():
        raise InjectedFault(f"injected error on {store.service} {route}")


async def apply_async(store: FaultStore, route: str) -> None:
    """The same faults as :func:`apply_sync`, without blocking the event loop."""
    if is_exempt(route):
        return
    await asyncio.sleep(store.delay(route))
    hang = store.get("hang")
    if hang is not None:
        deadline = time.monotonic() + hang.value
        while store.get("hang") is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    if store.fails():
        raise InjectedFault(f"injected error on {store.service} {route}")


def parse_admin_request(payload: Any) -> tuple[str, bool, float | None, str | None]:
    """Validate an admin request body ``{"name", "enabled", "value"?, "route"?}``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        raise ValueError('expected JSON {"name": str, "enabled": bool, "value"?: number}')
    value = payload.get("value")
    return (
        payload["name"],
        bool(payload.get("enabled", True)),
        None if value is None else float(value),
        payload.get("route") or None,
    )
