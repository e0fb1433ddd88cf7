"""Per-process metric values in memory-mapped files: cheap to write, exact across workers.

Why files: a prefork server's workers are separate processes, and Prometheus must see one
``/metrics`` per app instance whose totals include every worker, also workers that crashed or
were recycled. Each process writes its own values into ``<kind>_<pid>.db`` files in the app
instance's metrics directory, in prometheus_client's multiprocess file format (a proven format,
and :class:`prometheus_client.multiprocess.MultiProcessCollector` can read it too). A write is
a 16-byte store into shared memory, so it survives a SIGKILL of the worker the instant after.

Why not prometheus_client's own multiprocess mode: it is switched on by a process-wide variable
that would also change the app's own prometheus_client metrics, it has no cardinality limit, and
it drops exemplars. The reader side that fixes its file pile-up lives in
:mod:`spyglass.metrics.collector`.

Fork safety: after a fork the child starts with no values and a fresh lock, and opens files named
after its own pid. A file left by a dead process with a reused pid is read back first, so its
counts are continued, never overwritten.
"""

from __future__ import annotations

import bisect
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from spyglass import forksafe
from spyglass.metrics._prom import leaf

_mmap_dict = leaf("mmap_dict", ("MmapedDict", "mmap_key"))
MmapedDict = _mmap_dict.MmapedDict
mmap_key = _mmap_dict.mmap_key
floatToGoString = leaf("utils", ("floatToGoString",)).floatToGoString

__all__ = ["OVERFLOW_VALUE", "Counter", "Family", "Gauge", "Histogram", "ProcessStore"]

#: Label value that every label of the overflow series takes once a metric hits its limit.
OVERFLOW_VALUE = "__overflow__"


class ExemplarSink(Protocol):
    def offer(self, metric: str, labels: dict[str, str], le: str, value: float,
              trace_id: str, span_id: str) -> None: ...


class ProcessStore:
    """The current process's metric files. One per process; safe to use from any thread."""

    def __init__(self, directory: str, pid: Callable[[], int] = os.getpid,
                 direct: bool = True) -> None:
        """``direct=False`` writes every value through ``MmapedDict.write_value``."""
        self.directory = directory
        self.direct = direct and _DIRECT
        self._pid_fn = pid
        self._pid = pid()
        self.lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._families: list[Family] = []
        self.exemplars: ExemplarSink | None = None
        forksafe.register_after_in_child(self.reset_after_fork)

    @property
    def pid(self) -> int:
        return self._pid

    def reset_after_fork(self) -> None:
        self.lock = threading.Lock()
        self._pid = self._pid_fn()
        self._files = {}  # the parent's mmaps stay the parent's; never write them from here
        for family in self._families:
            family.reset()

    def file(self, prefix: str) -> _File:
        """The open file for ``prefix`` (caller holds ``lock``).

        When it cannot be created (the directory is gone: a spawned process outlived the
        app instance's owner, which removes it at exit), values go nowhere instead of
        raising into the app.
        """
        f = self._files.get(prefix)
        if f is None:
            path = os.path.join(self.directory, f"{prefix}_{self._pid}.db")
            try:
                mmaped = MmapedDict(path)
            except OSError:
                mmaped = None
            f = self._files[prefix] = _File(mmaped, self.direct)
        return f

    def register(self, family: Family) -> None:
        self._families.append(family)


#: Stores a value's two doubles (value, timestamp) at an offset of a mapping, in one C call.
_PACK_INTO: Final = struct.Struct(b"dd").pack_into
# Module functions as C statics of this compiled module (``bisect.bisect_left`` is a
# module attribute lookup on every call).
_bisect_left: Final = bisect.bisect_left
_monotonic: Final = time.monotonic


def _direct_layout() -> bool:
    """True when ``MmapedDict`` keeps its map in ``_m`` and each key's value offset in a dict
    ``_positions``, and ``write_value`` stores the two doubles (value, timestamp) there, as
    every prometheus_client release with this file format does.

    ``write_value`` is three interpreted calls, about 2,400 instructions, and a request writes
    four to six values (the RED histogram's bucket and sum, the in-flight gauge up and down, a
    dependency's histogram); where this check at import passes, :class:`_File` stores the 16
    bytes itself at offsets each child resolved once, and it calls ``write_value`` otherwise
    and for a key's first write (which lays the entry out and may grow and re-map the file).
    """
    try:
        with tempfile.TemporaryDirectory(prefix="spyglass-probe-") as tmp:
            f = MmapedDict(os.path.join(tmp, "probe.db"))
            try:
                f.write_value("k", 1.0, 2.0)
                pos = f._positions["k"]
                if type(pos) is not int:
                    return False
                _PACK_INTO(f._m, pos, 3.0, 4.0)
                return bool(f.read_value("k") == (3.0, 4.0))
            finally:
                f.close()
    except Exception:  # noqa: BLE001 - another layout: always go through write_value
        return False


_DIRECT: Final = _direct_layout()


class _File:
    """One metrics file of this process: its ``MmapedDict`` (None: it could not be created, and
    values go nowhere) and, for direct stores, the mapping it currently writes through.

    Every access to the ``MmapedDict`` goes through here, under the store's lock, so the
    mapping kept here is re-read after each call that may have grown the file.
    """

    def __init__(self, mmaped: Any, direct: bool) -> None:
        self.mmaped = mmaped
        self.direct = direct and mmaped is not None
        self.mapping: Any = mmaped._m if self.direct else None

    def read(self, key: str) -> float:
        if self.mmaped is None:
            return 0.0
        value = float(self.mmaped.read_value(key)[0])  # lays a new key out
        self._remapped()
        return value

    def write(self, key: str, value: float, timestamp: float) -> None:
        if self.mmaped is not None:
            self.mmaped.write_value(key, value, timestamp)
            self._remapped()

    def positions(self, keys: list[str]) -> list[int]:
        """Value offsets of ``keys`` (already read or written), or [] for no direct stores."""
        if not self.direct:
            return []
        where = self.mmaped._positions
        return [int(where[k]) for k in keys]

    def put(self, position: int, value: float, timestamp: float) -> None:
        _PACK_INTO(self.mapping, position, value, timestamp)

    def _remapped(self) -> None:
        if self.direct:
            self.mapping = self.mmaped._m


class _Child:
    __slots__ = ("_family", "_file", "_file_prefix", "_keys", "_positions", "_values")

    def __init__(self, family: Family, labelvalues: Sequence[str], suffixes: Sequence[
            tuple[str, Sequence[str], Sequence[str]]]) -> None:
        self._family = family
        self._file_prefix = family.file_prefix
        names = list(family.labelnames)
        self._keys = [
            mmap_key(family.name, family.name + suffix, names + list(extra_names),
                     list(labelvalues) + list(extra_values), family.help)
            for suffix, extra_names, extra_values in suffixes
        ]
        store = family.store
        with store.lock:
            f = store.file(self._file_prefix)
            if family.kind == "gauge":
                # A gauge is this process's present state; a dead namesake's value is stale.
                self._values = [0.0] * len(self._keys)
                for k in self._keys:
                    f.write(k, 0.0, time.time())
            else:
                # Continue what the file holds: a reused pid's counts are never overwritten.
                self._values = [f.read(k) for k in self._keys]
            # Every key now has its entry; an entry never moves, even when the file grows.
            self._file = f
            self._positions = f.positions(self._keys)

    def _store(self, f: _File, index: int, value: float, timestamp: float) -> None:
        """Write one value into ``f``, this process's file (the caller holds the lock)."""
        if f is self._file and self._positions:
            f.put(self._positions[index], value, timestamp)
        else:  # no direct stores, or a file this child did not lay out (another process's)
            f.write(self._keys[index], value, timestamp)

    def _add(self, index: int, amount: float) -> None:
        store = self._family.store
        with store.lock:
            value = self._values[index] + amount
            self._values[index] = value
            self._store(store.file(self._file_prefix), index, value, 0.0)

    def _set(self, index: int, value: float) -> None:
        store = self._family.store
        with store.lock:
            self._values[index] = value
            self._store(store.file(self._file_prefix), index, value, time.time())


class CounterChild(_Child):
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        self._add(0, amount)


class GaugeChild(_Child):
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        self._add(0, amount)

    def dec(self, amount: float = 1.0) -> None:
        self._add(0, -amount)

    def set(self, value: float) -> None:
        self._set(0, value)


class HistogramChild(_Child):
    __slots__ = ("_bounds", "_labels", "_last_exemplar")

    def __init__(self, family: Histogram, labelvalues: Sequence[str]) -> None:
        bounds = family.bounds
        les = [floatToGoString(b) for b in bounds] + ["+Inf"]
        suffixes = [("_bucket", ("le",), (le,)) for le in les] + [("_sum", (), ())]
        super().__init__(family, labelvalues, suffixes)
        self._bounds = bounds
        self._labels = dict(zip(family.labelnames, labelvalues, strict=True))
        self._last_exemplar = [0.0] * (len(bounds) + 1)

    def observe(self, value: float, trace_id: int = 0, span_id: int = 0) -> None:
        """Count ``value``; a non-zero ``trace_id`` (an int, formatted only if it is used)
        makes it a candidate exemplar for its bucket."""
        index = _bisect_left(self._bounds, value)
        store = self._family.store
        with store.lock:
            f = store.file(self._file_prefix)
            values = self._values
            values[index] += 1.0
            values[-1] += value
            self._store(f, index, values[index], 0.0)
            self._store(f, len(values) - 1, values[-1], 0.0)
        if trace_id:
            self._exemplar(index, value, trace_id, span_id)

    def observe_many(self, values: Sequence[float]) -> None:
        """Count several values under one lock, writing each touched bucket once."""
        if not values:
            return
        bounds = self._bounds
        store = self._family.store
        with store.lock:
            f = store.file(self._file_prefix)
            counts = self._values
            touched: set[int] = set()
            for value in values:
                index = _bisect_left(bounds, value)
                counts[index] += 1.0
                counts[-1] += value
                touched.add(index)
            for index in touched:
                self._store(f, index, counts[index], 0.0)
            self._store(f, len(counts) - 1, counts[-1], 0.0)

    def _exemplar(self, index: int, value: float, trace_id: int, span_id: int) -> None:
        # One exemplar per bucket and second is plenty for "show me a trace for this spike".
        now = _monotonic()
        if now - self._last_exemplar[index] < 1.0:
            return
        self._last_exemplar[index] = now
        sink = self._family.store.exemplars
        if sink is not None:
            le = "+Inf" if index == len(self._bounds) else floatToGoString(self._bounds[index])
            sink.offer(self._family.name, self._labels, le, value, format(trace_id, "032x"),
                       format(span_id, "016x"))


class Family:
    """A named metric with fixed label names; its label sets are capped at ``limit``."""

    kind = "counter"
    child_class: type[_Child] = CounterChild

    def __init__(self, store: ProcessStore, name: str, help: str, labelnames: Sequence[str] = (),
                 limit: int = 2000, on_overflow: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self.limit = limit
        self._on_overflow = on_overflow
        self._children: dict[tuple[str, ...], _Child] = {}
        self._create_lock = threading.Lock()
        store.register(self)

    @property
    def file_prefix(self) -> str:
        return self.kind

    def reset(self) -> None:
        self._children = {}
        self._create_lock = threading.Lock()

    def labels(self, *values: str) -> _Child:
        child = self._children.get(values)
        if child is None:
            child = self._create(values)
        return child

    def _create(self, values: tuple[str, ...]) -> _Child:
        with self._create_lock:
            child = self._children.get(values)
            if child is not None:
                return child
            if len(self._children) >= self.limit:
                overflow = (OVERFLOW_VALUE,) * len(self.labelnames)
                if self._on_overflow is not None:
                    self._on_overflow(self.name)
                child = self._children.get(overflow)
                if child is None:
                    child = self._children[overflow] = self._new_child(overflow)
                return child
            child = self._children[values] = self._new_child(values)
            return child

    def _new_child(self, values: tuple[str, ...]) -> _Child:
        return self.child_class(self, values, [("_total", (), ())])


class Counter(Family):
    kind = "counter"

    def __init__(self, store: ProcessStore, name: str, help: str,
                 labelnames: Sequence[str] = (), limit: int = 2000,
                 on_overflow: Callable[[str], None] | None = None) -> None:
        if name.endswith("_total"):
            name = name[: -len("_total")]
        super().__init__(store, name, help, labelnames, limit, on_overflow)

    def labels(self, *values: str) -> CounterChild:
        return super().labels(*values)  # type: ignore[return-value]


class Gauge(Family):
    """``mode`` is prometheus_client's multiprocess mode: livesum, liveall, max, ..."""

    kind = "gauge"
    child_class = GaugeChild

    def __init__(self, store: ProcessStore, name: str, help: str,
                 labelnames: Sequence[str] = (), mode: str = "livesum", limit: int = 2000,
                 on_overflow: Callable[[str], None] | None = None) -> None:
        self.mode = mode
        super().__init__(store, name, help, labelnames, limit, on_overflow)

    @property
    def file_prefix(self) -> str:
        return f"gauge_{self.mode}"

    def _new_child(self, values: tuple[str, ...]) -> _Child:
        return GaugeChild(self, values, [("", (), ())])

    def labels(self, *values: str) -> GaugeChild:
        return super().labels(*values)  # type: ignore[return-value]


class Histogram(Family):
    kind = "histogram"

    def __init__(self, store: ProcessStore, name: str, help: str,
                 labelnames: Sequence[str] = (), buckets: Sequence[float] = (),
                 limit: int = 2000, on_overflow: Callable[[str], None] | None = None) -> None:
        self.bounds = sorted(float(b) for b in buckets if b != float("inf"))
        super().__init__(store, name, help, labelnames, limit, on_overflow)

    def _new_child(self, values: tuple[str, ...]) -> _Child:
        return HistogramChild(self, values)

    def labels(self, *values: str) -> HistogramChild:
        return super().labels(*values)  # type: ignore[return-value]
