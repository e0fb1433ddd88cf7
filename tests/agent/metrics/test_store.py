"""The per-process metric files and the owner's merge: exact across processes, bounded on disk.

Processes here are real forks (os.fork), as a prefork server makes them.
"""

from __future__ import annotations

import glob
import os
import signal
import threading
import time

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


def _files(directory) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(os.path.basename(p) for p in glob.glob(str(directory / "*.db")))


def _only_archives_and_live(files: list[str]) -> bool:
    return all(f.endswith("_archive.db") or f"_{os.getpid()}." in f for f in files)


def test_dead_processes_are_folded_so_files_do_not_pile_up(tmp_path):
    store = ProcessStore(str(tmp_path))
    hist = Histogram(store, "demo_seconds", "Latency.", ["route"], buckets=(0.1, 1.0))
    registry = _registry(str(tmp_path))
    collector = DirectoryCollector(str(tmp_path))
    for i in range(40):
        _in_child(lambda i=i: hist.labels("/x").observe(0.05 if i % 2 else 0.5))
        if i % 10 == 0:
            collector.compact()
    collector.compact()
    families = _scrape(registry)
    files = _files(tmp_path)
    # Only the archives and this (live) process's files remain, however many workers churned.
    assert _only_archives_and_live(files), files
    assert len(files) <= 3
    assert value(families, "demo_seconds_count", route="/x") == 40
    assert value(families, "demo_seconds_bucket", route="/x", le="0.1") == 20
    assert value(families, "demo_seconds_bucket", route="/x", le="1.0") == 40
    assert value(families, "demo_seconds_sum", route="/x") == pytest.approx(20 * 0.05 + 20 * 0.5)


def test_a_scrape_never_folds_and_still_counts_dead_workers_exactly(tmp_path):
    """The fold (rewriting an archive: up to a second after a burst of restarts) is not the
    scrape's job; until it happens a scrape reads dead workers' own files."""
    store = ProcessStore(str(tmp_path))
    requests = Counter(store, "demo_requests_total", "Requests.", ["route"])
    active = Gauge(store, "demo_active", "Active.", mode="livesum")
    active.labels().inc(1)
    for _ in range(6):
        _in_child(lambda: (requests.labels("/a").inc(3), active.labels().inc(5)))
    collector = DirectoryCollector(str(tmp_path))
    before = _files(tmp_path)
    text = parse(collector.render(openmetrics=False).decode())
    assert value(text, "demo_requests_total", route="/a") == 18
    assert value(text, "demo_active") == 1  # dead workers' gauges are left out
    assert _files(tmp_path) == before, "a scrape folded files"
    collector.compact()
    assert _only_archives_and_live(_files(tmp_path))
    text = parse(collector.render(openmetrics=False).decode())
    assert value(text, "demo_requests_total", route="/a") == 18


def test_the_background_fold_keeps_files_bounded(tmp_path):
    store = ProcessStore(str(tmp_path))
    requests = Counter(store, "demo_requests_total", "Requests.")
    collector = DirectoryCollector(str(tmp_path))
    collector.start_folding(min_interval=0.05)
    for _ in range(20):
        _in_child(lambda: requests.labels().inc())
    wait_until(lambda: _only_archives_and_live(_files(tmp_path)), timeout=10,
               message="the fold thread folded the exited children's files")
    text = parse(collector.render(openmetrics=False).decode())
    assert value(text, "demo_requests_total") == 20


def test_scrapes_during_folds_count_every_dead_worker_exactly_once(tmp_path):
    """Workers exit while the fold thread folds and scrapes run: no scrape may count a folded
    worker twice (archive swapped in, file not yet deleted) or miss it (file deleted, archive
    not yet swapped in). Each child adds 1 and exits before the next starts, so every scrape
    must lie between the children finished before it began and those finished after it."""
    store = ProcessStore(str(tmp_path))
    requests = Counter(store, "demo_requests_total", "Requests.")
    collector = DirectoryCollector(str(tmp_path))
    collector.start_folding(min_interval=0.001, max_share=1.0)
    finished = [0]
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            _in_child(lambda: requests.labels().inc())
            finished[0] += 1

    worker = threading.Thread(target=churn)
    worker.start()
    seen = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            low = finished[0]
            got = value(parse(collector.render(openmetrics=False).decode()),
                        "demo_requests_total")
            high = finished[0] + 1  # one child may have added before being counted finished
            assert low <= got <= high, (low, got, high)
            seen.append(got)
    finally:
        stop.set()
        worker.join()
    assert len(seen) > 20 and seen[-1] > 20, seen
    assert any(f.endswith("_archive.db") for f in _files(tmp_path)), "nothing was ever folded"
    wait_until(lambda: _only_archives_and_live(_files(tmp_path)), timeout=10,
               message="everything folded after the churn")
    text = parse(collector.render(openmetrics=False).decode())
    assert value(text, "demo_requests_total") == finished[0]


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

    ours = DirectoryCollector(str(tmp_path))._merge(files)
    theirs = MultiProcessCollector.merge(files, accumulate=True)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert as_set(ours) == as_set(theirs)
    assert len(as_set(ours)) == 24  # 3 routes x (4 buckets + sum + count), 4 codes, 2 gauges


def test_kept_layouts_follow_files_that_grow_and_archives_that_are_rewritten(tmp_path):
    """The scrape keeps each file's parsed layout and series slots between scrapes; values
    written since, series added since, and an archive replaced by a fold must all show up
    exactly as prometheus_client's own reader sees the same files at that moment."""
    from prometheus_client.multiprocess import MultiProcessCollector

    def as_set(metrics) -> set:  # type: ignore[no-untyped-def]
        return {(s.name, tuple(sorted(s.labels.items())), round(s.value, 9))
                for m in metrics for s in m.samples}

    store = ProcessStore(str(tmp_path))
    hist = Histogram(store, "demo_seconds", "Latency.", ["route"], buckets=(0.1, 1.0))
    count = Counter(store, "demo_total", "Count.", ["code"])
    collector = DirectoryCollector(str(tmp_path))

    def same() -> None:
        files = collector._scrape_files()
        ours = {m.name: m for m in collector.collect()}
        theirs = MultiProcessCollector.merge(files, accumulate=True)
        assert as_set(m for n, m in ours.items() if n.startswith("demo")) == as_set(theirs)

    hist.labels("/a").observe(0.05)
    same()
    hist.labels("/a").observe(0.5)  # a value changes in place
    count.labels("200").inc()  # a new series is appended to a file already read
    same()
    for code in ("500", "503"):  # exited workers, then their files folded into the archive
        _in_child(lambda code=code: (count.labels(code).inc(2), hist.labels("/b").observe(3)))
    same()
    collector.compact()
    same()
    _in_child(lambda: count.labels("200").inc(5))
    collector.compact()  # the archive is rewritten: a new file with new positions
    count.labels("404").inc()
    same()
    text = parse(collector.render(openmetrics=False).decode())
    assert value(text, "demo_total", code="200") == 6
    assert value(text, "demo_seconds_count", route="/b") == 2


def test_the_background_round_parses_new_files_before_any_scrape(tmp_path):
    """After a burst of restarts the new workers' files are parsed by the owner's background
    round, not by the next scrape Prometheus waits on."""
    store = ProcessStore(str(tmp_path))
    requests = Counter(store, "demo_requests_total", "Requests.", ["route"])
    requests.labels("/a").inc()
    collector = DirectoryCollector(str(tmp_path))
    collector.start_folding(min_interval=0.05)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        requests.labels("/b").inc(4)
        os.write(write, b"x")
        signal.pause()
        os._exit(0)
    try:
        os.read(read, 1)
        child_file = str(tmp_path / f"counter_{pid}.db")
        wait_until(lambda: child_file in collector._table._layouts, timeout=10,
                   message="the background round parsed the new worker's file")
        text = parse(collector.render(openmetrics=False).decode())
        assert value(text, "demo_requests_total", route="/b") == 4
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_vanished_directory_drops_values_instead_of_raising(tmp_path):
    """A process spawned by a worker can outlive the owner, which removes the directory at
    exit: its metric writes (a gc observation at its exit, say) must not raise into it."""
    store = ProcessStore(str(tmp_path / "gone"))
    counter = Counter(store, "late_total", "counted after the owner left", ["kind"])
    histogram = Histogram(store, "late_seconds", "observed after the owner left", [],
                          buckets=(0.1, 1.0))
    gauge = Gauge(store, "late_gauge", "set after the owner left", [])
    counter.labels("a").inc()
    histogram.labels().observe(0.5)
    gauge.labels().set(3.0)
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("direct", [True, False])
def test_direct_writes_land_in_prometheus_clients_file_format(tmp_path, monkeypatch, direct):
    """Values the store writes itself (the 16 bytes at each key's offset) read back through
    prometheus_client's own reader exactly as ``write_value`` would have left them, also
    after the file grew (re-mapped) under many keys; the fallback path gives the same."""
    from prometheus_client.mmap_dict import MmapedDict

    from spyglass.metrics import store as store_module

    assert store_module._DIRECT, "the pinned prometheus_client has the layout the store assumes"
    assert store_module.MmapedDict is MmapedDict
    calls = []
    original = MmapedDict.write_value
    monkeypatch.setattr(MmapedDict, "write_value",
                        lambda self, *a: (calls.append(a[0]), original(self, *a))[1])
    store = ProcessStore(str(tmp_path), direct=direct)
    hist = Histogram(store, "h_seconds", "h", ["route"], buckets=[0.1, 1.0])
    counter = Counter(store, "c_total", "c", ["route"], limit=5000)
    early = counter.labels("/early")  # laid out before the file grows and is re-mapped
    for i in range(1500):  # enough keys to grow the file past its first 64 KiB mapping
        counter.labels(f"/r{i}").inc()
    for _ in range(5):
        hist.labels("/a").observe(0.5)
        counter.labels("/r0").inc(2)
        early.inc()
    writes_after_layout = len(calls)
    hist.labels("/a").observe(0.05)
    assert (len(calls) - writes_after_layout) == (0 if direct else 2)
    path = os.path.join(str(tmp_path), f"histogram_{os.getpid()}.db")
    values = {key: v for key, v, _, _ in MmapedDict.read_all_values_from_file(path)}
    assert sum(v for k, v in values.items() if "h_seconds_bucket" in k) == 6.0
    assert [v for k, v in values.items() if "h_seconds_sum" in k] == [pytest.approx(2.55)]
    counters = os.path.join(str(tmp_path), f"counter_{os.getpid()}.db")
    assert os.path.getsize(counters) > 1 << 16  # the file grew and was mapped again
    registry = _registry(str(tmp_path))
    scraped = _scrape(registry)
    assert value(scraped, "c_total", route="/r0") == 11.0
    assert value(scraped, "c_total", route="/r1499") == 1.0
    assert value(scraped, "c_total", route="/early") == 5.0
    assert value(scraped, "h_seconds_count", route="/a") == 6.0
