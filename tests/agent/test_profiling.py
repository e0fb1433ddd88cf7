"""py-spy under the agent: slow-request stacks on spans and in logs, stuck workers, and the
``spyglass profile``/``spyglass dump`` commands, on real apps under ``spyglass run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.agent.profiling_apps.harness import (
    APPS,
    app_env,
    gunicorn,
    missing_cli,
    missing_profiling_wiring,
)
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver, Span
from tests.support.procs import AppProcess, http_get, spyglass_argv
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.timeout(120)

HANG = "hung_in_known_function"
HOT = "burn_cpu_hot_loop"


def _needs(reason: str | None) -> None:
    if reason:
        pytest.skip(reason)


def _get_in_thread(url: str, results: dict[str, int], key: str) -> threading.Thread:
    def run() -> None:
        results[key] = http_get(url, timeout=30)[0]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _slow_events(span: Span) -> list[dict[str, Any]]:
    return [attrs for name, attrs in span.events if name == "spyglass.slow_request"]


def test_hung_request_gets_its_stack_on_the_span_and_in_a_log_line(
        otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver) -> None:
    """One request hangs in a known function: its span gets exactly one stack event naming it,
    a WARNING log line with the same trace id; a second request that turns slow during the
    rate-limit pause gets none; the worker with no finished request for 2 s is dumped once."""
    _needs(missing_profiling_wiring())
    port = free_port()
    env = app_env(otlp_receiver, loki_receiver, SPYGLASS_SLOW_REQUEST_SECONDS="1",
                  SPYGLASS_STUCK_WORKER_SECONDS="2", SPYGLASS_SLOW_REQUEST_INTERVAL="30")
    argv = spyglass_argv(*gunicorn("-w", "1", "-k", "gthread", "--threads", "4",
                                   "-b", f"127.0.0.1:{port}", "flask_app:app"),
                         service_name="slowapp")
    with AppProcess(argv, env=env, cwd=APPS) as app:
        base = f"http://127.0.0.1:{port}"
        app.wait_http(base + "/health", status=200)
        results: dict[str, int] = {}
        first = _get_in_thread(base + "/hang?seconds=3.5", results, "first")
        time.sleep(1.5)  # the second request starts while the first is already captured
        second = _get_in_thread(base + "/hang?seconds=2.5", results, "second")
        first.join(30)
        second.join(30)
        assert results == {"first": 200, "second": 200}, app.describe()

        spans = otlp_receiver.wait_for_spans(lambda s: s.name == "GET /hang", count=2)
        by_query = {s.attributes.get("url.query"): s for s in spans}
        slow, later = by_query["seconds=3.5"], by_query["seconds=2.5"]
        events = _slow_events(slow)
        assert len(events) == 1, (slow.events, app.describe())
        stack = events[0]["code.stacktrace"]
        assert HANG in stack.splitlines()[1], stack  # the innermost Python frame
        assert events[0]["thread.name"], events[0]
        assert events[0]["spyglass.elapsed_seconds"] >= 1.0
        assert _slow_events(later) == [], "captures are rate-limited per process"

        logged = loki_receiver.wait_for(lambda e: "slow request" in e.line)
        assert len(logged) == 1, [e.line[:200] for e in logged]
        assert logged[0].metadata.get("trace_id") == slow.trace_id
        assert f"trace_id={slow.trace_id}" in logged[0].line
        assert "logger=profiling.watchdog" in logged[0].line and HANG in logged[0].line
        assert logged[0].labels["level"] == "warning"

        stuck = loki_receiver.wait_for(lambda e: "is stuck" in e.line)
        time.sleep(0.5)  # a second stuck report would come within the next check interval
        stuck = [e for e in loki_receiver.entries() if "is stuck" in e.line]
        assert len(stuck) == 1, [e.line[:200] for e in stuck]
        assert stuck[0].line.count(HANG) == 2, "both hung threads are in the dump"
        assert stuck[0].metadata.get("trace_id") == slow.trace_id


PERMISSION_DENIED_PYSPY = """#!{python}
import sys
sys.stderr.write("Permission Denied: Try running again with elevated permissions by going "
                 "'sudo env \\"PATH=$PATH\\" !!'\\n")
sys.exit(1)
"""


def _fake_pyspy(tmp_path: Path) -> Path:
    """A py-spy that fails the way the real one does without ptrace permission."""
    script = tmp_path / "py-spy"
    script.write_text(PERMISSION_DENIED_PYSPY.format(python=sys.executable))
    script.chmod(0o755)
    return script


def test_without_ptrace_permission_one_message_says_how_to_grant_it(
        tmp_path: Path, otlp_receiver: OTLPReceiver) -> None:
    _needs(missing_profiling_wiring())
    port = free_port()
    env = app_env(otlp_receiver, SPYGLASS_SLOW_REQUEST_SECONDS="0.3",
                  SPYGLASS_STUCK_WORKER_SECONDS="0", SPYGLASS_SLOW_REQUEST_INTERVAL="0.1",
                  SPYGLASS_PYSPY=str(_fake_pyspy(tmp_path)))
    argv = spyglass_argv(*gunicorn("-w", "1", "-b", f"127.0.0.1:{port}", "flask_app:app"))
    with AppProcess(argv, env=env, cwd=APPS) as app:
        base = f"http://127.0.0.1:{port}"
        app.wait_http(base + "/health", status=200)
        for _ in range(2):
            assert http_get(base + "/hang?seconds=1", timeout=10)[0] == 200
        assert http_get(base + "/health")[0] == 200, "the app carries on"
        spans = otlp_receiver.wait_for_spans(lambda s: s.name == "GET /hang", count=2)
        assert all(_slow_events(s) == [] for s in spans)
        messages = [line for line in app.stderr().splitlines() if "SYS_PTRACE" in line]
        assert len(messages) == 1, app.describe()
        assert "ptrace_scope" in messages[0] and "--cap-add SYS_PTRACE" in messages[0]


# --------------------------------------------------------------------------- the commands


def _spyglass(*args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spyglass", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          check=False)


class _Load:
    """Closed-loop load on one URL from a few threads until stopped."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.count = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                http_get(self.url, timeout=10)
                self.count += 1
            except OSError:
                time.sleep(0.05)

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def _self_weights(doc: dict[str, Any]) -> Counter[str]:
    """Seconds of samples per leaf frame name, over every profile in a speedscope file."""
    frames = doc["shared"]["frames"]
    weights: Counter[str] = Counter()
    for profile in doc["profiles"]:
        for sample, weight in zip(profile["samples"], profile["weights"], strict=True):
            if sample:
                weights[frames[sample[-1]]["name"]] += weight
    return weights


def _check_speedscope(doc: dict[str, Any]) -> None:
    """The parts of speedscope's file format (file-format-schema.json) the viewer needs."""
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    nframes = len(doc["shared"]["frames"])
    assert all(isinstance(f["name"], str) for f in doc["shared"]["frames"])
    for profile in doc["profiles"]:
        assert profile["type"] == "sampled" and profile["unit"] in ("seconds", "milliseconds")
        assert len(profile["samples"]) == len(profile["weights"])
        assert all(0 <= i < nframes for sample in profile["samples"] for i in sample)


@pytest.fixture
def burning_app(otlp_receiver: OTLPReceiver) -> Any:
    _needs(missing_cli())
    port = free_port()
    argv = spyglass_argv(*gunicorn("-w", "2", "-b", f"127.0.0.1:{port}", "flask_app:app"),
                         service_name=f"profiled-{port}")
    with AppProcess(argv, env=app_env(otlp_receiver), cwd=APPS) as app:
        app.wait_http(f"http://127.0.0.1:{port}/health", status=200)
        wait_until(lambda: len(app.children()) >= 2, timeout=15)
        yield app, port


def test_profile_by_port_records_every_worker_with_the_hot_function_on_top(
        tmp_path: Path, burning_app: Any) -> None:
    app, port = burning_app
    out = tmp_path / "cpu.speedscope.json"
    with _Load(f"http://127.0.0.1:{port}/burn?ms=40") as load:
        result = _spyglass("profile", "--port", str(port), "--duration", "3",
                           "--format", "speedscope", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert load.count > 10
    pids = {app.pid, *app.children()}
    written = {int(line.split("\tpid ")[1]): Path(line.split("\t")[0])
               for line in result.stdout.splitlines()}
    assert set(written) == pids, (written, pids)
    total: Counter[str] = Counter()
    for pid, path in written.items():
        assert path == tmp_path / f"cpu.speedscope.{pid}.json"
        doc = json.loads(path.read_text())
        _check_speedscope(doc)
        total += _self_weights(doc)
    top = [name for name, _ in total.most_common(3)]
    assert HOT in top, total.most_common(10)


def test_profile_one_pid_as_flamegraph_svg(tmp_path: Path, burning_app: Any) -> None:
    app, port = burning_app
    worker = app.children()[0]
    out = tmp_path / "one.svg"
    with _Load(f"http://127.0.0.1:{port}/burn?ms=40"):
        result = _spyglass("profile", "--pid", str(worker), "--duration", "2",
                           "--format", "flamegraph", "-o", str(out))
    assert result.returncode == 0, result.stderr
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    titles = [el.text or "" for el in root.iter() if el.tag.endswith("title")]
    assert any(title.startswith(HOT) for title in titles), titles[:20]


def test_dump_prints_every_thread_of_the_service(tmp_path: Path, burning_app: Any) -> None:
    _, port = burning_app
    results: dict[str, int] = {}
    hung = _get_in_thread(f"http://127.0.0.1:{port}/hang?seconds=3", results, "hang")
    name = f"profiled-{port}"
    wait_until(lambda: HANG in _spyglass("dump", "--service", name).stdout, timeout=10)
    result = _spyglass("dump", "--service", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Process ") == 3  # the arbiter and both workers
    assert '"MainThread"' in result.stdout
    hung.join(15)


def test_commands_explain_a_ptrace_refusal_and_a_missing_target(tmp_path: Path,
                                                                burning_app: Any) -> None:
    app, _ = burning_app
    env = {"SPYGLASS_PYSPY": str(_fake_pyspy(tmp_path))}
    for args in (["dump", "--pid", str(app.pid)],
                 ["profile", "--pid", str(app.pid), "--duration", "1", "-o",
                  str(tmp_path / "x.json")]):
        result = _spyglass(*args, env=env)
        assert result.returncode == 1, result
        assert "--cap-add SYS_PTRACE" in result.stderr and "ptrace_scope" in result.stderr
    missing = _spyglass("profile", "--service", "no-such-service-here", "--duration", "1")
    assert missing.returncode == 2
    assert "OTEL_SERVICE_NAME=no-such-service-here" in missing.stderr
