"""The Flask benchmark app behind a WSGI layer that runs fixed pure-Python work per request.

For ``threads.py``: does the same in-process cost grow differently under a real server when it
is arithmetic (``PROBE=compute``) or, like a tracer's work, small allocations and
context-variable sets (``PROBE=alloc``)? And do objects made before the app and read again
after the response (``PROBE=keep-split``, as a span is started and ended) cost more than the
same objects read at once (``PROBE=keep-together``)? ``PROBE_N`` sizes the work; the module
prints the compute and alloc probes' in-process cost (best of 5 loops of 2,000 calls) when run
as a script.
"""

from __future__ import annotations

import contextvars
import os
import time
from typing import Any

from flask_app import app as flask_app

MODE = os.environ.get("PROBE", "")
N = int(os.environ.get("PROBE_N", "600"))
_var: contextvars.ContextVar[Any] = contextvars.ContextVar("probe", default=None)
_table = {f"k{i}": i for i in range(4096)}


class _Obj:
    __slots__ = ("a", "b", "c", "d")

    def __init__(self, a: Any, b: Any, c: Any, d: Any) -> None:
        self.a, self.b, self.c, self.d = a, b, c, d


def compute(n: int = N) -> int:
    acc = 0
    for i in range(n * 5 // 2):
        acc += i & 7
    return acc


def alloc(n: int = N) -> int:
    out = []
    for i in range(n // 10):
        attrs = {"http.request.method": "GET", "url.path": "/work", "i": i}
        obj = _Obj(attrs, (i, i + 1), f"GET {i}", _table.get(f"k{i & 4095}"))
        token = _var.set(obj)
        _var.reset(token)
        out.append(obj)
    return len(out)


def _keep(n: int = N) -> list[_Obj]:
    out = []
    for i in range(n // 10):
        attrs = {"http.request.method": "GET", "url.path": "/work", "i": i}
        out.append(_Obj(attrs, (i, i + 1), f"GET {i}", _table.get(f"k{i & 4095}")))
    return out


def _touch(kept: list[_Obj]) -> int:
    total = 0
    for obj in kept:
        total += len(obj.a) + obj.b[0] + len(obj.c)
    return total


class _Closing:
    """The app's body, then ``_touch`` once the server has sent it (as a span ends)."""

    def __init__(self, body: Any, kept: list[_Obj]) -> None:
        self._body = body
        self._kept = kept

    def __iter__(self) -> Any:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            _touch(self._kept)


_WORK = {"compute": compute, "alloc": alloc}.get(MODE)


def app(environ: dict, start_response: Any) -> Any:
    if MODE in ("keep-together", "keep-split"):
        # The same objects made before the app and read again: at once (together), or after
        # the response went out (split), the way a server span is started and ended.
        kept = _keep()
        if MODE == "keep-together":
            _touch(kept)
            kept = []
        return _Closing(flask_app(environ, start_response), kept)
    if _WORK is not None:
        _WORK()
    return flask_app(environ, start_response)


def _in_process_us(fn: Any) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.thread_time()
        for _ in range(2000):
            fn()
        best = min(best, (time.thread_time() - t0) / 2000 * 1e6)
    return best


if __name__ == "__main__":
    for name, fn in (("compute", compute), ("alloc", alloc)):
        print(f"{name}: {_in_process_us(fn):.1f} µs per request in-process (PROBE_N={N})")
