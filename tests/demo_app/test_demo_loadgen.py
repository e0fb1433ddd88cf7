"""The load generator keeps its rate, counts errors honestly and reports percentiles."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from demo_app.loadgen import LoadConfig, run_load
from demo_app.loadgen.stats import EndpointStats, Stats, percentile
from tests.demo_app.harness import REPO_ROOT
from tests.support.waiting import closed_port


class FakeStorefront(ThreadingHTTPServer):
    """Stands for the demo's storefront (not the storefront): a catalogue of three products,
    every other route answers 200, except the paths in ``fail`` (500) and with ``delay``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail: tuple[str, ...] = ()
        self.delay = 0.0
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeStorefront

    def _answer(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        time.sleep(self.server.delay)
        status = 500 if self.path.startswith(self.server.fail) else 200
        if self.path == "/products":
            body = json.dumps({"products": [{"id": 7}, {"id": 8}, {"id": 9}]}).encode()
        else:
            body = b"{}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def storefront() -> Iterator[FakeStorefront]:
    server = FakeStorefront()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([], 50) == 0.0
    assert EndpointStats(3, 0, [0.3, 0.1, 0.2]).percentiles() == {50: 0.2, 95: 0.3, 99: 0.3}


def test_steady_rate_and_the_mix(storefront: FakeStorefront) -> None:
    stats = asyncio.run(run_load(LoadConfig(storefront.url, rps=40, duration=2.0, seed=1)))
    total = stats.total()
    assert 75 <= total.requests <= 81  # 80 scheduled + the catalogue request
    assert total.errors == 0 and stats.skipped == 0
    assert set(stats.endpoints) >= {"GET /products", "GET /products/{product_id}"}
    assert stats.endpoints["GET /products/{product_id}"].requests > 20  # browse-heavy
    # only product ids learnt from the catalogue are used, and carts are checked out
    views = [p for p in storefront.seen if p.startswith("GET /products/")]
    assert {v.rsplit("/", 1)[1] for v in views} <= {"7", "8", "9"}
    assert any(p == "POST /checkout" for p in storefront.seen)


def test_5xx_and_exceptions_are_errors(storefront: FakeStorefront) -> None:
    storefront.fail = ("/products/",)
    stats = asyncio.run(run_load(LoadConfig(storefront.url, rps=30, duration=1.0, seed=2)))
    views = stats.endpoints["GET /products/{product_id}"]
    assert views.errors == views.requests > 0
    assert stats.endpoints["GET /products"].errors == 0
    refused = asyncio.run(
        run_load(LoadConfig(f"http://127.0.0.1:{closed_port()}", rps=20, duration=0.5))
    )
    assert refused.total().requests == refused.total().errors > 5


def test_open_loop_skips_instead_of_slowing_down(storefront: FakeStorefront) -> None:
    storefront.delay = 0.5
    config = LoadConfig(storefront.url, rps=20, duration=1.0, concurrency=2, seed=3)
    started = time.monotonic()
    stats = asyncio.run(run_load(config))
    assert time.monotonic() - started < 2.5
    assert stats.skipped >= 10
    assert min(stats.total().latencies) >= 0.5  # send to full response, server delay included


def test_stop_event_ends_an_endless_run(storefront: FakeStorefront) -> None:
    async def run() -> Stats:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        return await run_load(LoadConfig(storefront.url, rps=10), stop=stop)

    assert 3 <= asyncio.run(run()).total().requests <= 8


def test_command_line_prints_progress_and_summary(storefront: FakeStorefront) -> None:
    options = ["--rps", "20", "--duration", "1.5", "--concurrency", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "demo_app.loadgen", "--base-url", storefront.url, *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "requests=" in done.stderr and "p95=" in done.stderr
    assert "p50 ms" in done.stdout and done.stdout.splitlines()[-1].startswith("total")
