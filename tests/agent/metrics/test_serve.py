"""The ``/metrics`` server of the owner process starts without asking DNS anything (the
stdlib HTTP server looks up the host's FQDN when it binds, which takes seconds where DNS is
slow, before the app can start), and the process start time comes from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.procs import http_get
from tests.support.waiting import free_port

from spyglass import metrics
from spyglass.config import load_config
from spyglass.metrics.collector import ExemplarStore


def test_metrics_server_binds_without_a_dns_lookup(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object) -> None:
        raise AssertionError(f"DNS lookup {args} while starting /metrics")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    monkeypatch.setattr(socket, "gethostbyaddr", no_dns)
    port = free_port()
    config = load_config(environ={"SPYGLASS_METRICS_PORT": str(port)}, cwd=tmp_path)
    metrics._serve(config, str(tmp_path), ExemplarStore())
    status, headers, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"target_info" in body


def test_process_start_time_is_when_the_process_started() -> None:
    before = time.time()
    code = ("from spyglass.metrics import _process_start_time as t; import time; "
            "print(t(), time.time())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": ""}).stdout.split()
    started, now = float(out[0]), float(out[1])
    tick = 1 / os.sysconf("SC_CLK_TCK")
    # Kernel boot time is whole seconds: allow that, one clock tick, and the clocks' skew.
    assert before - 1.0 - tick <= started <= now
    assert started < now
