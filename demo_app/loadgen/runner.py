"""Open-loop load: requests are sent on a fixed schedule, whatever the answers take.

A closed loop (send, wait, send) slows down with the system under test and hides its worst
latencies. Here request *i* is due at ``start + i / rps``; at most ``concurrency`` are in
flight, and a request due while all slots are busy is skipped and counted, not delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from demo_app.loadgen.mix import Request, TrafficMix
from demo_app.loadgen.stats import Stats

FALLBACK_PRODUCT_IDS = list(range(1, 49))


@dataclass(frozen=True)
class LoadConfig:
    """What to send: where, how fast, how long (None: until stopped), how many at once."""

    base_url: str
    rps: float = 5.0
    duration: float | None = None
    concurrency: int = 10
    timeout: float = 10.0
    seed: int | None = None
    progress_every: float = 1.0


async def _send(client: httpx.AsyncClient, request: Request, stats: Stats) -> int:
    """Send one request and record it; returns the status (0 for an exception)."""
    started = time.perf_counter()
    status = 0
    try:
        response = await client.request(
            request.method, request.path, json=request.json, headers=request.headers
        )
        status = response.status_code  # httpx has read the whole body by now
    except httpx.HTTPError:
        pass
    stats.record(request.endpoint, time.perf_counter() - started, error=not 0 < status < 500)
    return status


async def _product_ids(client: httpx.AsyncClient, stats: Stats) -> list[int]:
    """Learn the catalogue's ids with one (counted) request; fall back to the seed ids."""
    request = Request("GET /products", "GET", "/products")
    started = time.perf_counter()
    try:
        response = await client.get(request.path)
        stats.record(request.endpoint, time.perf_counter() - started, response.status_code >= 500)
        ids = [int(p["id"]) for p in response.json()["products"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return FALLBACK_PRODUCT_IDS
    return ids or FALLBACK_PRODUCT_IDS


async def _report(stats: Stats, every: float, progress: Callable[[Stats], None]) -> None:
    while True:
        await asyncio.sleep(every)
        progress(stats)


async def run_load(
    config: LoadConfig,
    stop: asyncio.Event | None = None,
    progress: Callable[[Stats], None] | None = None,
) -> Stats:
    """Drive the storefront until ``config.duration`` passes or ``stop`` is set."""
    stop = stop or asyncio.Event()
    stats = Stats()
    limits = httpx.Limits(max_connections=config.concurrency)
    timeout = httpx.Timeout(config.timeout)
    in_flight: set[asyncio.Task[None]] = set()
    client = httpx.AsyncClient(base_url=config.base_url, timeout=timeout, limits=limits)
    async with client:
        mix = TrafficMix(await _product_ids(client, stats), random.Random(config.seed))
        reporter = asyncio.create_task(_report(stats, config.progress_every, progress or _noop))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(10**12):
            due = start + i / config.rps
            if config.duration is not None and due - start >= config.duration:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - loop.time()))
            if stop.is_set():
                break
            if len(in_flight) >= config.concurrency:
                stats.skipped += 1
                continue
            task = asyncio.create_task(_one(client, mix, stats))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:  # let requests already sent finish, within their own timeout
            await asyncio.wait(in_flight, timeout=config.timeout)
        for task in in_flight:
            task.cancel()
        reporter.cancel()
    return stats


async def _one(client: httpx.AsyncClient, mix: TrafficMix, stats: Stats) -> None:
    request = mix.next_request()
    mix.done(request, await _send(client, request, stats))


def _noop(stats: Stats) -> None:
    return None
