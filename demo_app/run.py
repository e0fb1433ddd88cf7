"""``python -m demo_app``: start the shop, drive it with the load generator, stop cleanly.

With nothing configured it needs no server: SQLite, the in-process cache and a SQLite-backed
Celery broker, all under the state directory. DATABASE_URL, REDIS_URL and CELERY_BROKER_URL switch
to PostgreSQL, Redis and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from demo_app import config, faults, services
from demo_app.loadgen import LoadConfig, Stats, run_load
from demo_app.loadgen.progress import ProgressPrinter
from demo_app.supervisor import Child, Supervisor
from demo_app.worker.app import ready_file

START_ORDER = ("payments", "orders", "worker", "storefront")
READY_TIMEOUT = 60.0


class StartupError(RuntimeError):
    """A service exited or did not become ready in time."""


@dataclass(frozen=True)
class RunOptions:
    """Options of the one command."""

    duration: float | None = None
    rps: float = 5.0
    concurrency: int = 10
    load: bool = True


def _say(message: str) -> None:
    print(message, flush=True)


def _backends() -> str:
    return ", ".join(
        [
            "PostgreSQL" if config.database_url() else "SQLite (embedded)",
            "Redis" if config.redis_url() else "in-process cache (embedded)",
            "RabbitMQ" if config.broker_url() else "SQLite broker (embedded)",
        ]
    )


def _reset_state() -> None:
    """Forget the previous run: faults off, readiness marker and queued embedded tasks gone."""
    for name in config.SERVICE_NAMES:
        faults.FaultStore(name).clear()
    ready_file().unlink(missing_ok=True)
    if config.broker_url() is None:
        (config.state_dir() / "broker.sqlite3").unlink(missing_ok=True)


def _migrate() -> None:
    cmd = services.migrate_command()
    done = subprocess.run(cmd.argv, env=cmd.env, cwd=services.REPO_ROOT, capture_output=True)
    if done.returncode != 0:
        raise StartupError(f"migrate failed:\n{done.stdout.decode()}{done.stderr.decode()}")


async def _ready(child: Child, client: httpx.AsyncClient) -> bool:
    if child.name == "worker":
        return ready_file().exists()
    with contextlib.suppress(httpx.HTTPError):
        response = await client.get(f"{config.service_url(child.name)}/healthz")
        return response.status_code == 200
    return False


async def _wait_ready(supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """Poll every service until all are ready; False if stopped first; raise if one dies."""
    pending = list(supervisor.children)
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=1.0) as client:
        while pending and not stop.is_set():
            for child in supervisor.exited():
                raise StartupError(f"{child.name} exited during startup:\n{child.log_tail()}")
            pending = [c for c in pending if not await _ready(c, client)]
            if time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise StartupError(f"not ready after {READY_TIMEOUT:.0f}s: {names}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    return not stop.is_set()


def _print_endpoints(supervisor: Supervisor) -> None:
    for name in config.SERVICE_NAMES:
        spec = config.service(name)
        app = f"app {config.service_url(name)}" if spec.port else "app (no HTTP server)"
        metrics = (
            f"metrics http://{config.HOST}:{spec.metrics_port}/metrics"
            if services.agent_enabled()
            else "metrics off (DEMO_NO_AGENT=1)"
        )
        _say(f"  {name:<11} {app:<30} {metrics}  log {supervisor.log_dir / (name + '.log')}")


async def _watch(supervisor: Supervisor, stop: asyncio.Event) -> None:
    """Stop the run if a service dies underneath it."""
    while not stop.is_set():
        dead = supervisor.exited()
        if dead:
            for child in dead:
                _say(f"\n{child.name} exited unexpectedly:\n{child.log_tail()}")
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _drive(options: RunOptions, stop: asyncio.Event) -> Stats | None:
    """Run the load generator, or just wait, until the duration passes or a stop."""
    if not options.load:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), options.duration)
        return None
    printer = ProgressPrinter()
    load = LoadConfig(
        base_url=config.service_url("storefront"),
        rps=options.rps,
        duration=options.duration,
        concurrency=options.concurrency,
    )
    stats = await run_load(load, stop=stop, progress=printer)
    printer.finish()
    return stats


async def run(options: RunOptions) -> int:
    """Start everything, run, stop; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    state = config.state_dir()
    _say(f"Spyglass demo shop: {_backends()}; state in {state}")
    _reset_state()
    supervisor = Supervisor(state / "logs")
    code = 0
    try:
        await asyncio.to_thread(_migrate)
        for name in START_ORDER:
            supervisor.start(services.command(name))
        _say("starting services ...")
        if not await _wait_ready(supervisor, stop):
            _say("stopped before the services were ready")
            return 0
        _print_endpoints(supervisor)
        _say("ready; Ctrl-C to stop" if options.duration is None else "ready")
        watcher = asyncio.create_task(_watch(supervisor, stop))
        stats = await _drive(options, stop)
        code = 1 if supervisor.exited() else 0
        stop.set()
        await watcher
        if stats is not None:
            _say("\nsummary\n" + stats.summary())
    except StartupError as exc:
        _say(f"error: {exc}")
        code = 1
    finally:
        _say("stopping services ...")
        await asyncio.to_thread(supervisor.stop)
        _say("stopped")
    return code


def main(options: RunOptions) -> int:
    """Entry point for ``python -m demo_app``."""
    try:
        return asyncio.run(run(options))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    finally:
        sys.stdout.flush()
