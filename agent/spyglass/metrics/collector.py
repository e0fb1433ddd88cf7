"""The owner side: one ``/metrics`` for all of an app instance's processes, with no pile-up.

The first process of an app instance (the gunicorn arbiter, the uvicorn supervisor, the Celery
master, Django's autoreloader, or the app itself when it does not fork) owns the metrics
directory and serves it.

1. **Folding, in a background thread** (:meth:`DirectoryCollector.start_folding`): the files
   of processes that have exited are merged into ``counter_archive.db`` /
   ``histogram_archive.db`` and deleted, and their gauges dropped. So the directory holds one
   set of files per *live* process plus two archives, however many workers churned
   (prometheus/client_python#275, #367: files pile up and scrapes slow down), and the totals
   stay exact, dead workers included. Rewriting an archive takes up to a second after a burst
   of restarts, which is why no scrape waits for it: a scrape reads a dead worker's counters
   and histograms from its own file until they are folded, and the fold swaps the new archive
   in and deletes the folded files under the scrape lock, so no scrape counts them twice.
2. **At every scrape, merging** live files, not-yet-folded files and archives, summing exactly
   as prometheus_client's ``MultiProcessCollector`` does (same file format), but with parsed
   keys kept across scrapes. Gauges of exited processes are left out.
3. **attaches exemplars**: workers send the trace id of a sampled request per histogram bucket
   over a Unix datagram socket (lossy by design: an exemplar is a sample, and a full socket must
   never block a request), and the owner keeps the latest per bucket.
4. **adds per-process runtime metrics** read from ``/proc`` for every live process (CPU, RSS,
   open fds, threads), so workers need no sampling thread of their own.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from spyglass._log import get_logger
from spyglass.metrics._prom import leaf
from spyglass.metrics.table import SeriesTable, metrics_of, render_families

__all__ = ["DirectoryCollector", "ExemplarClient", "ExemplarStore", "SimpleFamily", "live_pids"]

# prometheus_client's Metric/Sample classes and exposition are imported only by collect() (a
# registry's view); the scrape renders itself (see spyglass.metrics._prom for why).
Exemplar = leaf("samples", ("Exemplar",)).Exemplar
floatToGoString = leaf("utils", ("floatToGoString",)).floatToGoString

_ARCHIVABLE = ("counter", "histogram")
_MAX_EXEMPLARS = 20_000
_SOCKET_NAME = "exemplars.sock"
_MAX_CACHED_KEYS = 500_000


def _pid_of(path: str) -> int | None:
    stem = os.path.basename(path)[:-3]
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_pids(directory: str) -> list[int]:
    pids = {_pid_of(p) for p in glob.glob(os.path.join(directory, "*.db"))}
    return sorted(p for p in pids if p is not None and _alive(p))


class ExemplarStore:
    """Latest exemplar per (metric, labels, bucket), bounded; lives in the owner process."""

    def __init__(self, limit: int = _MAX_EXEMPLARS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        # Each exemplar with its OpenMetrics suffix, rendered at the first scrape that shows
        # it and kept (workers may replace an exemplar many times between two scrapes).
        self._data: OrderedDict[tuple[str, tuple[tuple[str, str], ...]],
                                list[Any]] = OrderedDict()

    def offer(self, metric: str, labels: dict[str, str], le: str, value: float,
              trace_id: str, span_id: str) -> None:
        key = (metric + "_bucket", tuple(sorted({**labels, "le": le}.items())))
        ex = Exemplar({"trace_id": trace_id, "span_id": span_id}, value, time.time())
        with self._lock:
            self._data.pop(key, None)
            self._data[key] = [ex, None]
            while len(self._data) > self._limit:
                self._data.popitem(last=False)

    def get(self, sample_name: str, labels: dict[str, str]) -> Any:
        return self.get_by_key((sample_name, tuple(sorted(labels.items()))))

    def get_by_key(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> Any:
        """``get`` with the key already built: (sample name, sorted label pairs)."""
        found = self._data.get(key)
        return found[0] if found is not None else None

    def suffix_by_key(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> str:
        """The exemplar as OpenMetrics writes it after a bucket's value, or ""."""
        found = self._data.get(key)
        if found is None:
            return ""
        text = found[1]
        if text is None:
            text = found[1] = _exemplar_text(found[0])
        return str(text)

    def serve(self, directory: str) -> None:
        """Receive exemplars from the other processes in a daemon thread."""
        path = os.path.join(directory, _SOCKET_NAME)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock.bind(path)
        thread = threading.Thread(target=self._receive, args=(sock,), name="spyglass-exemplars",
                                  daemon=True)
        thread.start()

    def _receive(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(4096)
                metric, labels, le, value, trace_id, span_id = json.loads(data)
                self.offer(str(metric), {str(k): str(v) for k, v in labels.items()}, str(le),
                           float(value), str(trace_id), str(span_id))
            except OSError:
                return
            except Exception:  # noqa: BLE001 - a malformed datagram is dropped, never fatal
                continue


class ExemplarClient:
    """The worker side: a non-blocking datagram per exemplar; a full socket drops it."""

    def __init__(self, directory: str) -> None:
        self._path = os.path.join(directory, _SOCKET_NAME)
        self._sock: socket.socket | None = None
        self._pid = -1

    def offer(self, metric: str, labels: dict[str, str], le: str, value: float,
              trace_id: str, span_id: str) -> None:
        try:
            if self._pid != os.getpid() or self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
                self._pid = os.getpid()
            payload = json.dumps([metric, labels, le, value, trace_id, span_id]).encode()
            self._sock.sendto(payload, self._path)
        except OSError:
            pass


class DirectoryCollector:
    """A prometheus_client collector over one app instance's metrics directory."""

    def __init__(self, directory: str, exemplars: ExemplarStore | None = None,
                 extra: Iterable[SimpleFamily] = (), proc_root: str = "/proc") -> None:
        self._dir = directory
        self._exemplars = exemplars
        self._extra = list(extra)
        self._proc = proc_root
        self._lock = threading.Lock()  # held by a scrape, and by a fold's final swap
        self._fold_lock = threading.Lock()  # one fold at a time
        self._keys: dict[str, _Key] = {}
        self._headers: dict[tuple[str, str, str, bool], str] = {}
        self._layouts: dict[str, _Layout] = {}
        self._prefixes: dict[tuple[Any, ...], str] = {}
        self._table = SeriesTable(_MAX_CACHED_KEYS)
        self._clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _scrape_files(self) -> list[str]:
        """The files a scrape reads (caller holds ``_lock``): every counter and histogram file,
        folded or not, and the gauge files of live processes only."""
        alive: dict[int, bool] = {}
        files = []
        for path in glob.glob(os.path.join(self._dir, "*.db")):
            if os.path.basename(path).startswith("gauge_"):
                pid = _pid_of(path)
                if pid is not None:
                    live = alive.get(pid)
                    if live is None:
                        live = alive[pid] = _alive(pid)
                    if not live:
                        continue
            files.append(path)
        return files

    def start_folding(self, min_interval: float = 2.0, max_share: float = 0.2) -> None:
        """Fold exited processes' files into the archives from a daemon thread, for good.

        A fold runs when files of exited processes are waiting, at most every
        ``min_interval`` seconds and, after a slow fold, only once ``max_share`` of the time
        since it began has been spent folding: under heavy worker churn the owner (often the
        process manager that forks the workers) keeps most of its time for its own work.
        Each round also reads the directory as a scrape would, so the layouts of new workers'
        files are parsed here rather than by the next scrape (the first scrape after a burst
        of restarts otherwise parsed every new file's keys).
        The thread exists only in the owner; forked children never call the collector.
        """
        def run() -> None:
            pause = min_interval
            while True:
                time.sleep(pause)
                began = time.monotonic()
                try:
                    self.compact()
                    with self._lock:
                        self._read_scrape()
                except Exception:  # noqa: BLE001 - the next round retries; scrapes stay exact
                    get_logger().warning("folding exited workers' metrics failed; retrying",
                                         exc_info=True)
                pause = max(min_interval, (time.monotonic() - began) / max_share)

        threading.Thread(target=run, name="spyglass-metrics-fold", daemon=True).start()

    def _read_scrape(self) -> tuple[list[float], list[Any], dict[str, _Acc]]:
        return self._read(self._scrape_files())

    def _read(self, files: list[str]) -> tuple[list[float], list[Any], dict[str, _Acc]]:
        """Sum ``files``, all a scrape reads: counters and histograms through the series
        table, gauges through the dict path (caller holds ``_lock``).

        Same file format and the same results as prometheus_client's
        ``MultiProcessCollector.merge``, but each key's JSON is parsed once and kept across
        scrapes: the stock merge parses ~40,000 keys per scrape with 4 workers and 500 routes
        and spent most of a 500 ms scrape doing so. A file that vanished between the glob and
        the read is skipped instead of failing the scrape.
        """
        summed: list[tuple[str, str]] = []
        gauges: list[str] = []
        for path in files:
            kind = os.path.basename(path).split("_", 1)[0]
            if kind == "gauge":
                gauges.append(path)
            else:
                summed.append((path, kind))
        sums, plan = self._table.sum_files(summed, self._parsed)
        return sums, plan, self._gauges(gauges)

    def _parsed(self, key: str) -> _Key:
        keys = self._keys
        parsed = keys.get(key)
        if parsed is None:
            if len(keys) > _MAX_CACHED_KEYS:
                keys.clear()
            parsed = keys[key] = _parse_key(key)
        return parsed

    def collect(self) -> Iterator[Any]:
        with self._lock:
            sums, plan, gauges = self._read_scrape()
        store = self._exemplars
        yield from metrics_of(sums, plan, store.get_by_key if store is not None else None)
        for name, a in gauges.items():
            yield a.metric(name)
        for fam in [*self._process_metrics(), *self._extra]:
            yield fam.metric()

    def render(self, openmetrics: bool) -> bytes:
        """The whole exposition, in the text format or OpenMetrics, rendered directly.

        Same output as ``prometheus_client``'s ``generate_latest`` over :meth:`collect`
        (``tests/agent/metrics/test_render.py`` compares them), but from the series table's
        plan (``metrics/table.py``): each series' name and escaped labels are formatted once
        and kept across scrapes. With 4 workers x 500 routes that is ~8,500 series, and the
        stock exposition escaped every label value character by character on every scrape
        (~250 ms text, ~400 ms OpenMetrics).
        """
        with self._lock:
            sums, plan, gauges = self._read_scrape()
            out: list[str] = []
            store = self._exemplars
            exemplar = store.suffix_by_key if openmetrics and store is not None else None
            render_families(out, sums, plan, openmetrics, self._header, exemplar, _float_text)
            for name, a in gauges.items():
                self._render_family(out, name, a, openmetrics)
        for fam in [*self._process_metrics(), *self._extra]:
            fam.render(out, openmetrics)
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode()

    def _header(self, name: str, kind: str, help_text: str, om: bool) -> str:
        header = self._headers.get((name, kind, help_text, om))
        if header is None:
            header = self._headers[(name, kind, help_text, om)] = _header(name, kind,
                                                                          help_text, om)
        return header

    def _render_family(self, out: list[str], name: str, a: _Acc, om: bool) -> None:
        """One gauge family (counters and histograms go through the series table)."""
        out.append(self._header(name, a.kind, a.help, om))
        prefixes = self._prefixes
        fmt = _float_text
        for (sample_name, labels), value in a.samples.items():
            key = (sample_name, labels, om)
            prefix = prefixes.get(key)
            if prefix is None:
                prefix = prefixes[key] = _series(sample_name, labels, om)
            out.append(f"{prefix} {fmt(value)}\n")
        if len(prefixes) > _MAX_CACHED_KEYS:
            prefixes.clear()

    def _gauges(self, files: list[str]) -> dict[str, _Acc]:
        """Merge the gauge ``files`` per series by each file's mode (few files: one per live
        process and mode), keeping parsed layouts in ``_layouts``."""
        acc: dict[str, _Acc] = {}
        layouts = self._layouts
        seen: set[str] = set()
        for path in files:
            parts = os.path.basename(path).split("_")
            mode = parts[1]
            pid = parts[-1][:-3]
            try:
                entries, data = self._entries(path, layouts)
            except (FileNotFoundError, RuntimeError):
                continue
            seen.add(path)
            unpack = _unpack_two_doubles
            for pos, parsed in entries:
                value, timestamp = unpack(data, pos)
                metric_name, name, labels, _le, help_text = parsed
                a = acc.get(metric_name)
                if a is None:
                    a = acc[metric_name] = _Acc("gauge", help_text, mode)
                a.gauge(name, labels, pid, value, timestamp)
        for gone in set(layouts) - seen:
            del layouts[gone]
        return acc

    def _entries(self, path: str, layouts: dict[str, _Layout]) -> tuple[list[tuple[int, _Key]],
                                                                       bytes]:
        """The file's bytes and its (value position, parsed key) list.

        Entries are only ever appended, so the list parsed at the previous scrape stays valid
        and only entries written since are parsed; a file replaced (new inode, e.g. an archive
        rewrite or a reused pid) or shrunk is parsed again from the start.
        """
        inode, used, data = read_db(path)
        if used == 0:
            return [], b""
        layout = layouts.get(path)
        if layout is None or layout[0] != inode or layout[1] > used:
            layout = layouts[path] = (inode, 8, [])
        _, upto, entries = layout
        if upto < used:
            for key, _v, _t, pos in _read_all_values(data[:used], used, upto):
                entries.append((pos, self._parsed(key)))
            layouts[path] = (inode, used, entries)
        return entries, data

    def _merge(self, files: list[str]) -> list[Any]:
        """``files`` summed, as prometheus_client ``Metric`` objects without exemplars."""
        sums, plan, gauges = self._read(files)
        return [*metrics_of(sums, plan, None),
                *(a.metric(name) for name, a in gauges.items())]

    def compact(self) -> list[int]:
        """Fold the files of exited processes into the archives; return their pids.

        All the dead files of one kind are merged with the archive in one pass, so a fold
        after many restarts costs one rewrite per kind, not one per dead process. The merge
        and the rewrite happen outside the scrape lock (scrapes go on reading the dead files
        meanwhile); only the swap -- new archive in, folded files out -- holds it, so every
        scrape sees each dead worker's counts exactly once.
        """
        with self._fold_lock:
            by_pid: dict[int, list[str]] = {}
            for path in glob.glob(os.path.join(self._dir, "*.db")):
                pid = _pid_of(path)
                if pid is not None:
                    by_pid.setdefault(pid, []).append(path)
            dead = [pid for pid in by_pid if not _alive(pid)]
            to_fold: dict[str, list[str]] = {}
            gauges: list[tuple[int, str]] = []
            for pid in dead:
                for path in by_pid[pid]:
                    kind = os.path.basename(path).split("_", 1)[0]
                    if kind in _ARCHIVABLE:
                        to_fold.setdefault(kind, []).append(path)
                    else:
                        gauges.append((pid, path))
            for kind, paths in to_fold.items():
                folded = set(paths)
                self._fold(kind, paths, {p for p in dead if folded.intersection(by_pid[p])})
            for pid, path in gauges:
                if _alive(pid):
                    continue  # the pid was reused meanwhile: the file is a live process's now
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return dead

    def _fold(self, kind: str, paths: list[str], pids: set[int]) -> None:
        """Sum ``paths`` and the archive entry by entry and write the new archive.

        Entries are summed by their stored key bytes (prometheus_client writes the same key
        for the same series: sorted JSON) and the file is written directly in its format, so
        a fold never parses JSON: it runs in the owner, often the process manager that forks
        replacement workers, and a fold through parsed keys and ``MmapedDict`` writes took
        ~250 ms for 500 routes.
        """
        archive = os.path.join(self._dir, f"{kind}_archive.db")
        sources = paths + ([archive] if os.path.exists(archive) else [])
        sums: dict[bytes, float] = {}
        for path in sources:
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
                for key, value in _raw_entries(data):
                    sums[key] = sums.get(key, 0.0) + value
            except (FileNotFoundError, RuntimeError):
                continue  # vanished, or torn by a crash mid-write: nothing more to recover
        tmp = archive + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(_db_bytes(sums))
        with self._lock:
            if any(_alive(pid) for pid in pids):
                # A pid was reused while we merged, and its new process may have written to
                # the old file: keep everything as it is, the next fold retries.
                os.unlink(tmp)
                return
            os.replace(tmp, archive)
            for path in paths:
                os.unlink(path)

    def _process_metrics(self) -> Iterator[SimpleFamily]:
        cpu = SimpleFamily("process_cpu_seconds_total",
                           "CPU seconds (user + system) per process", "counter", ["pid"])
        rss = SimpleFamily("process_resident_memory_bytes", "Resident memory per process",
                           "gauge", ["pid"])
        fds = SimpleFamily("process_open_fds", "Open file descriptors per process", "gauge",
                           ["pid"])
        threads = SimpleFamily("process_threads", "OS threads per process", "gauge", ["pid"])
        for pid in live_pids(self._dir):
            base = os.path.join(self._proc, str(pid))
            try:
                with open(os.path.join(base, "stat"), "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                with open(os.path.join(base, "statm"), "rb") as fh:
                    resident = int(fh.read().split()[1])
                nfds = len(os.listdir(os.path.join(base, "fd")))
            except (OSError, IndexError, ValueError):
                continue  # exited meanwhile, or no /proc here: no sample rather than an error
            label = str(pid)
            cpu.add([label], (int(fields[11]) + int(fields[12])) / self._clock_ticks)
            rss.add([label], resident * self._page)
            fds.add([label], nfds)
            threads.add([label], int(fields[17]))
        for fam in (cpu, rss, fds, threads):
            if fam.samples:
                yield fam


_Key = tuple[str, str, tuple[tuple[str, str], ...], float | None, str]
_Layout = tuple[int, int, list[tuple[int, _Key]]]  # inode, bytes parsed, (value pos, key)
_unpack_int = struct.Struct("i").unpack_from
_pack_int = struct.Struct("i").pack
_pack_two_doubles = struct.Struct("dd").pack
_unpack_two_doubles = struct.Struct("dd").unpack_from


def read_db(path: str) -> tuple[int, int, bytes]:
    """A metrics file's inode, its used-bytes header (0 if too short) and its used bytes."""
    with open(path, "rb") as fh:
        inode = os.fstat(fh.fileno()).st_ino
        head = fh.read(8)
        if len(head) < 8:
            return inode, 0, b""
        used = _unpack_int(head, 0)[0]
        return inode, used, head + fh.read(max(0, used - 8))


def _read_all_values(data: bytes, used: int, start: int = 8) -> Iterator[tuple[str, float,
                                                                                float, int]]:
    """prometheus_client's ``mmap_dict._read_all_values``, from an offset: (key, value,
    timestamp, value position) for each entry in ``data[start:used]``."""
    pos = start
    while pos < used:
        encoded_len = _unpack_int(data, pos)[0]
        if encoded_len + pos > used:
            raise RuntimeError("Read beyond file size detected, file is corrupted.")
        pos += 4
        encoded_key = data[pos:pos + encoded_len]
        pos += encoded_len + (8 - (encoded_len + 4) % 8)
        value, timestamp = _unpack_two_doubles(data, pos)
        yield encoded_key.decode("utf-8"), value, timestamp, pos
        pos += 16


def _raw_entries(data: bytes) -> Iterator[tuple[bytes, float]]:
    """(key bytes, value) of every entry of a prometheus_client ``MmapedDict`` file."""
    if len(data) < 8:
        return
    used = _unpack_int(data, 0)[0]
    if used > len(data):
        raise RuntimeError("Read beyond file size detected, file is corrupted.")
    pos = 8
    while pos < used:
        length = _unpack_int(data, pos)[0]
        if length + pos > used:
            raise RuntimeError("Read beyond file size detected, file is corrupted.")
        key = data[pos + 4:pos + 4 + length]
        pos += 4 + length + (8 - (length + 4) % 8)
        yield key, _unpack_two_doubles(data, pos)[0]
        pos += 16


def _db_bytes(entries: dict[bytes, float]) -> bytes:
    """A ``MmapedDict`` file holding ``entries``: a used-bytes header, then per entry its key
    length, key, space padding to 8 bytes, value and timestamp (prometheus_client's layout)."""
    parts = [b"\0" * 8]
    size = 8
    for key, value in entries.items():
        length = len(key)
        padding = 8 - (length + 4) % 8
        parts.append(_pack_int(length) + key + b" " * padding
                     + _pack_two_doubles(value, 0.0))
        size += 4 + length + padding + 16
    parts[0] = _pack_int(size) + b"\0" * 4
    return b"".join(parts)


def _parse_key(key: str) -> _Key:
    metric_name, name, labels, help_text = json.loads(key)
    le = labels.pop("le", None) if name.endswith("_bucket") else None
    return (metric_name, name, tuple(sorted(labels.items())),
            float(le) if le is not None else None, help_text)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _header(name: str, kind: str, help_text: str, om: bool) -> str:
    """HELP and TYPE lines as prometheus_client writes them in each format."""
    if om:
        doc = help_text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
        return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
    shown = name + "_total" if kind == "counter" else name
    doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n"


def _series(sample_name: str, labels: tuple[tuple[str, str], ...], om: bool) -> str:
    """``name{label="value",...}`` with sorted, escaped labels (the same in both formats)."""
    if not labels:
        return sample_name
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels))
    return f"{sample_name}{{{inner}}}"


def _exemplar_text(ex: Any) -> str:
    labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(ex.labels.items()))
    if ex.timestamp is not None:
        return f" # {{{labels}}} {_float_text(ex.value)} {ex.timestamp}"
    return f" # {{{labels}}} {_float_text(ex.value)}"


def _float_text(value: float) -> str:
    """``floatToGoString``, remembered: most values on a scrape are small whole counts."""
    text = _FLOAT_TEXT.get(value)
    if text is None:
        text = floatToGoString(value)
        if len(_FLOAT_TEXT) >= 4096:
            _FLOAT_TEXT.clear()
        _FLOAT_TEXT[value] = text
    return text


_FLOAT_TEXT: dict[float, str] = {}


_LE_TEXT: dict[float, str] = {}


def _le_text(le: float) -> str:
    text = _LE_TEXT.get(le)
    if text is None:
        text = _LE_TEXT[le] = floatToGoString(le)
    return text


class _Acc:
    """One gauge's values across files, merged by its mode."""

    __slots__ = ("help", "kind", "mode", "samples", "stamps")

    def __init__(self, kind: str, help_text: str, mode: str) -> None:
        self.kind = kind
        self.help = help_text
        self.mode = mode
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.stamps: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def gauge(self, name: str, labels: tuple[tuple[str, str], ...], pid: str, value: float,
              timestamp: float) -> None:
        mode = self.mode.removeprefix("live")
        if mode == "all":
            self.samples[(name, (*labels, ("pid", pid)))] = value
            return
        key = (name, labels)
        current = self.samples.get(key)
        if mode == "sum":
            self.samples[key] = (current or 0.0) + value
        elif mode == "max":
            self.samples[key] = value if current is None else max(current, value)
        elif mode == "min":
            self.samples[key] = value if current is None else min(current, value)
        elif mode == "mostrecent" and (current is None
                                       or timestamp > self.stamps.get(key, 0.0)):
            self.samples[key] = value
            self.stamps[key] = timestamp

    def metric(self, name: str) -> Any:
        from prometheus_client.core import Metric
        from prometheus_client.samples import Sample

        metric = Metric(name, self.help, self.kind)
        for (sample_name, labels), value in self.samples.items():
            metric.samples.append(Sample(sample_name, dict(labels), value))
        return metric


class SimpleFamily:
    """A small gauge or counter family (per-process metrics, ``target_info``), rendered here
    exactly as prometheus_client's ``GaugeMetricFamily``/``CounterMetricFamily`` would be."""

    __slots__ = ("help", "kind", "labelnames", "name", "samples")

    def __init__(self, name: str, help_text: str, kind: str,
                 labelnames: Sequence[str] = ()) -> None:
        if kind == "counter" and name.endswith("_total"):
            name = name[:-6]  # as CounterMetricFamily: the family is named without _total
        self.name = name
        self.help = help_text
        self.kind = kind
        self.labelnames = tuple(labelnames)
        self.samples: list[tuple[tuple[str, ...], float]] = []

    def add(self, values: Sequence[str], value: float) -> None:
        self.samples.append((tuple(values), float(value)))

    def render(self, out: list[str], om: bool) -> None:
        out.append(_header(self.name, self.kind, self.help, om))
        sample = self.name + "_total" if self.kind == "counter" else self.name
        for values, value in self.samples:
            labels = tuple(zip(self.labelnames, values, strict=True))
            out.append(f"{_series(sample, labels, om)} {_float_text(value)}\n")

    def metric(self) -> Any:
        """The same family as a prometheus_client ``Metric`` (for ``collect()``)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        fam = cls(self.name, self.help, labels=list(self.labelnames))
        for values, value in self.samples:
            fam.add_metric(list(values), value)
        return fam
