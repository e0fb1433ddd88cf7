"""The owner side: one ``/metrics`` for all of an app instance's processes, with no pile-up.

The first process of an app instance (the gunicorn arbiter, the uvicorn supervisor, the Celery
master, Django's autoreloader, or the app itself when it does not fork) owns the metrics
directory and serves it. At every scrape it:

1. **compacts** the files of processes that have exited: their counters and histograms are
   merged into ``counter_archive.db`` / ``histogram_archive.db`` and the files deleted, and
   their gauges are dropped. So the directory holds one set of files per *live* process plus
   two archives, however many workers churned (prometheus/client_python#275, #367: files pile
   up and scrapes slow down), and the totals stay exact, dead workers included.
2. **merges** live files and archives with prometheus_client's own ``MultiProcessCollector``.
3. **attaches exemplars**: workers send the trace id of a sampled request per histogram bucket
   over a Unix datagram socket (lossy by design: an exemplar is a sample, and a full socket must
   never block a request), and the owner keeps the latest per bucket.
4. **adds per-process runtime metrics** read from ``/proc`` for every live process (CPU, RSS,
   open fds, threads), so workers need no sampling thread of their own.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Exemplar, Sample

from spyglass._log import get_logger

__all__ = ["DirectoryCollector", "ExemplarClient", "ExemplarStore", "live_pids"]

_ARCHIVABLE = ("counter", "histogram")
_MAX_EXEMPLARS = 20_000
_SOCKET_NAME = "exemplars.sock"


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
        self._data: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], Exemplar] = OrderedDict()

    def offer(self, metric: str, labels: dict[str, str], le: str, value: float,
              trace_id: str, span_id: str) -> None:
        key = (metric + "_bucket", tuple(sorted({**labels, "le": le}.items())))
        ex = Exemplar({"trace_id": trace_id, "span_id": span_id}, value, time.time())
        with self._lock:
            self._data.pop(key, None)
            self._data[key] = ex
            while len(self._data) > self._limit:
                self._data.popitem(last=False)

    def get(self, sample_name: str, labels: dict[str, str]) -> Exemplar | None:
        return self._data.get((sample_name, tuple(sorted(labels.items()))))

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
                 extra: Iterable[Metric] = (), proc_root: str = "/proc") -> None:
        self._dir = directory
        self._exemplars = exemplars
        self._extra = list(extra)
        self._proc = proc_root
        self._lock = threading.Lock()
        self._clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                self.compact()
            except Exception:  # noqa: BLE001 - a failed compaction retries at the next scrape
                get_logger().warning("metrics compaction failed; retrying at the next scrape",
                                     exc_info=True)
            files = glob.glob(os.path.join(self._dir, "*.db"))
            metrics = list(MultiProcessCollector.merge(files, accumulate=True))
        for metric in metrics:
            if metric.type == "histogram" and self._exemplars is not None:
                metric.samples = [self._with_exemplar(s) for s in metric.samples]
            yield metric
        yield from self._process_metrics()
        yield from self._extra

    def _with_exemplar(self, sample: Sample) -> Sample:
        if not sample.name.endswith("_bucket") or self._exemplars is None:
            return sample
        ex = self._exemplars.get(sample.name, sample.labels)
        return sample._replace(exemplar=ex) if ex is not None else sample

    def compact(self) -> list[int]:
        """Fold the files of exited processes into the archives; return their pids."""
        by_pid: dict[int, list[str]] = {}
        for path in glob.glob(os.path.join(self._dir, "*.db")):
            pid = _pid_of(path)
            if pid is not None:
                by_pid.setdefault(pid, []).append(path)
        dead = [pid for pid in by_pid if not _alive(pid)]
        for pid in dead:
            for path in by_pid[pid]:
                kind = os.path.basename(path).split("_", 1)[0]
                if kind in _ARCHIVABLE:
                    self._fold(kind, path)
                else:
                    os.unlink(path)
        return dead

    def _fold(self, kind: str, path: str) -> None:
        archive = os.path.join(self._dir, f"{kind}_archive.db")
        sources = [path] + ([archive] if os.path.exists(archive) else [])
        merged = MultiProcessCollector.merge(sources, accumulate=False)
        tmp = archive + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        out = MmapedDict(tmp)
        try:
            for metric in merged:
                for s in metric.samples:
                    key = mmap_key(metric.name, s.name, list(s.labels), list(s.labels.values()),
                                   metric.documentation)
                    out.write_value(key, s.value, 0.0)
        finally:
            out.close()
        os.replace(tmp, archive)
        os.unlink(path)

    def _process_metrics(self) -> Iterator[Metric]:
        cpu = _Family("process_cpu_seconds_total", "CPU seconds (user + system) per process",
                      "counter")
        rss = _Family("process_resident_memory_bytes", "Resident memory per process", "gauge")
        fds = _Family("process_open_fds", "Open file descriptors per process", "gauge")
        threads = _Family("process_threads", "OS threads per process", "gauge")
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
            cpu.add(label, (int(fields[11]) + int(fields[12])) / self._clock_ticks)
            rss.add(label, resident * self._page)
            fds.add(label, nfds)
            threads.add(label, int(fields[17]))
        for fam in (cpu, rss, fds, threads):
            if fam.metric.samples:
                yield fam.metric


class _Family:
    def __init__(self, name: str, help: str, kind: str) -> None:
        if kind == "counter":
            from prometheus_client.core import CounterMetricFamily

            self.metric: Metric = CounterMetricFamily(name, help, labels=["pid"])
        else:
            self.metric = GaugeMetricFamily(name, help, labels=["pid"])

    def add(self, pid: str, value: float) -> None:
        self.metric.add_metric([pid], value)  # type: ignore[attr-defined]
