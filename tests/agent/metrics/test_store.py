"""The per-process metric files and the owner's merge: exact across processes, bounded on disk.

Processes here are real forks (os.fork), as a prefork server makes them.
"""

from __future__ import annotations

import glob
import os
import signal

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from tests.support.prom import parse, promtool_check_metrics, value
from tests.support.waiting import wait_until

from spyglass.metrics.collector import DirectoryCollector, ExemplarClient, ExemplarStore
from spyglass.metrics.store import OVERFLOW_VALUE, Counter, Gauge, Histogram, ProcessStore


def _registry(directory: str, exemplars: ExemplarStore | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DirectoryCollector(directory, exemplars))
    return registry


def _scrape(registry: CollectorRegistry) -> dict:  # type: ignore[type-arg]
    return parse(generate_latest(registry).decode())


def _in_child(fn) -> int:  # type: ignore[no-untyped-def]
    """Run fn in a forked child that exits with os._exit (like a killed worker); return pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid


def test_counts_are_summed_over_live_and_dead_processes(tmp_path):
    store = ProcessStore(str(tmp_path))
    requests = Counter(store, "demo_requests_total", "Requests.", ["route"])
    requests.labels("/a").inc()
    for _ in range(5):
        _in_child(lambda: [requests.labels("/a").inc() for _ in range(10)])
    families = _scrape(_registry(str(tmp_path)))
    assert value(families, "demo_requests_total", route="/a") == 51


def test_dead_processes_are_compacted_so_files_do_not_pile_up(tmp_path):
    store = ProcessStore(str(tmp_path))
    hist = Histogram(store, "demo_seconds", "Latency.", ["route"], buckets=(0.1, 1.0))
    registry = _registry(str(tmp_path))
    for i in range(40):
        _in_child(lambda i=i: hist.labels("/x").observe(0.05 if i % 2 else 0.5))
        if i % 10 == 0:
            _scrape(registry)
    families = _scrape(registry)
    files = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "*.db")))
    # Only the archives and this (live) process's files remain, however many workers churned.
    assert all(f.endswith("_archive.db") or f"_{os.getpid()}." in f for f in files), files
    assert len(files) <= 3
    assert value(families, "demo_seconds_count", route="/x") == 40
    assert value(families, "demo_seconds_bucket", route="/x", le="0.1") == 20
    assert value(families, "demo_seconds_bucket", route="/x", le="1.0") == 40
    assert value(families, "demo_seconds_sum", route="/x") == pytest.approx(20 * 0.05 + 20 * 0.5)


def test_a_killed_worker_keeps_what_it_recorded(tmp_path):
    store = ProcessStore(str(tmp_path))
    counter = Counter(store, "demo_jobs_total", "Jobs.")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        for _ in range(7):
            counter.labels().inc()
        os.write(write, b"x")
        signal.pause()
        os._exit(0)
    os.read(read, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert value(_scrape(_registry(str(tmp_path))), "demo_jobs_total") == 7


def test_a_reused_pid_continues_its_namesakes_counts(tmp_path):
    fake_pid = [4_000_000]
    store = ProcessStore(str(tmp_path), pid=lambda: fake_pid[0])
    Counter(store, "demo_total", "x").labels().inc(3)
    # A new process with the same pid (fresh store, same file) must not overwrite the 3.
    store2 = ProcessStore(str(tmp_path), pid=lambda: fake_pid[0])
    Counter(store2, "demo_total", "x").labels().inc(2)
    collector = DirectoryCollector(str(tmp_path))
    samples = {s.name: s.value for m in collector.collect() for s in m.samples}
    assert samples["demo_total"] == 5


def test_live_gauges_drop_dead_processes(tmp_path):
    store = ProcessStore(str(tmp_path))
    active = Gauge(store, "demo_active", "Active.", mode="livesum")
    active.labels().inc(2)
    _in_child(lambda: active.labels().inc(5))
    families = _scrape(_registry(str(tmp_path)))
    assert value(families, "demo_active") == 2


def test_label_sets_are_capped_with_an_overflow_series(tmp_path):
    store = ProcessStore(str(tmp_path))
    overflowed: list[str] = []
    counter = Counter(store, "demo_paths_total", "x", ["path"], limit=10,
                      on_overflow=overflowed.append)
    for i in range(1000):
        counter.labels(f"/p/{i}").inc()
    families = _scrape(_registry(str(tmp_path)))
    series = [s for s in families["demo_paths"].samples if s.name == "demo_paths_total"]
    assert len(series) == 11
    assert value(families, "demo_paths_total", path=OVERFLOW_VALUE) == 990
    assert len(overflowed) == 990


def test_exemplars_travel_from_workers_to_the_owner(tmp_path):
    exemplars = ExemplarStore()
    exemplars.serve(str(tmp_path))
    store = ProcessStore(str(tmp_path))
    store.exemplars = exemplars
    hist = Histogram(store, "demo_latency_seconds", "x", ["route"], buckets=(0.1, 1.0))
    hist.labels("/own").observe(0.05, int("a" * 32, 16), int("b" * 16, 16))

    def child() -> None:
        store.exemplars = ExemplarClient(str(tmp_path))
        hist.labels("/child").observe(0.5, int("c" * 32, 16), int("d" * 16, 16))

    _in_child(child)
    registry = _registry(str(tmp_path), exemplars)

    def exposition() -> str | None:
        text = generate_openmetrics(registry).decode()
        return text if 'trace_id="' + "c" * 32 in text else None

    text = wait_until(exposition, timeout=5, message="child exemplar never arrived")
    assert 'trace_id="' + "a" * 32 in text
    # The plain text exposition (what promtool lints) has no exemplars and stays valid.
    ok, output = promtool_check_metrics(generate_latest(registry).decode())
    assert ok, output


def test_fork_gives_the_child_its_own_file_and_zero_values(tmp_path):
    store = ProcessStore(str(tmp_path))
    counter = Counter(store, "demo_forks_total", "x")
    counter.labels().inc(10)

    def child() -> None:
        counter.labels().inc()
        mine = glob.glob(str(tmp_path / f"counter_{os.getpid()}.db"))
        assert mine, "child did not get its own file"

    _in_child(child)
    assert value(_scrape(_registry(str(tmp_path))), "demo_forks_total") == 11


def test_merge_matches_prometheus_clients_multiprocess_collector(tmp_path):
    """Our faster merge sums exactly as prometheus_client's own reader of the same files."""
    from prometheus_client.multiprocess import MultiProcessCollector

    store = ProcessStore(str(tmp_path))
    hist = Histogram(store, "demo_seconds", "Latency.", ["route"], buckets=(0.1, 1.0, 5.0))
    count = Counter(store, "demo_total", "Count.", ["code"])
    live = Gauge(store, "demo_live", "Live.", mode="livesum")
    peak = Gauge(store, "demo_peak", "Peak.", mode="max")

    def record(seed: int) -> None:
        for i in range(20):
            hist.labels(f"/r{i % 3}").observe((seed * 7 + i) % 11 / 3)
            count.labels(str(200 + i % 4)).inc(seed + 1)
        live.labels().inc(seed)
        peak.labels().set(seed * 2)

    record(1)
    children: list[int] = []
    for seed in (2, 3):
        pid = os.fork()
        if pid == 0:
            record(seed)
            os.kill(os.getpid(), signal.SIGSTOP)  # stay alive (files count as live) until read
            os._exit(0)
        os.waitpid(pid, os.WUNTRACED)
        children.append(pid)
    files = sorted(glob.glob(str(tmp_path / "*.db")))

    def as_set(metrics) -> set:  # type: ignore[no-untyped-def]
        return {(s.name, tuple(sorted(s.labels.items())), round(s.value, 9))
                for m in metrics for s in m.samples}

    ours = DirectoryCollector(str(tmp_path))._merge(files, accumulate=True)
    theirs = MultiProcessCollector.merge(files, accumulate=True)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert as_set(ours) == as_set(theirs)
    assert len(as_set(ours)) == 24  # 3 routes x (4 buckets + sum + count), 4 codes, 2 gauges
