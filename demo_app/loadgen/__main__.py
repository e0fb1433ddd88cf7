"""``python -m demo_app.loadgen``: drive a running storefront and print a summary."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from demo_app import config
from demo_app.loadgen.progress import ProgressPrinter
from demo_app.loadgen.runner import LoadConfig, run_load
from demo_app.loadgen.stats import Stats


def parse_args(argv: list[str] | None = None) -> LoadConfig:
    """Command-line options to a LoadConfig."""
    parser = argparse.ArgumentParser(prog="python -m demo_app.loadgen", description=__doc__)
    parser.add_argument("--base-url", default=config.service_url("storefront"))
    parser.add_argument("--rps", type=float, default=5.0, help="target requests per second")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: Ctrl-C)")
    parser.add_argument("--concurrency", type=int, default=10, help="max requests in flight")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    parser.add_argument("--seed", type=int, default=None, help="seed of the traffic mix")
    args = parser.parse_args(argv)
    if args.rps <= 0 or args.concurrency < 1:
        parser.error("--rps must be > 0 and --concurrency >= 1")
    return LoadConfig(
        base_url=args.base_url.rstrip("/"),
        rps=args.rps,
        duration=args.duration,
        concurrency=args.concurrency,
        timeout=args.timeout,
        seed=args.seed,
    )


async def _main(load: LoadConfig) -> Stats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printer = ProgressPrinter()
    stats = await run_load(load, stop=stop, progress=printer)
    printer.finish()
    return stats


def main(argv: list[str] | None = None) -> int:
    """Run the load and print the summary."""
    stats = asyncio.run(_main(parse_args(argv)))
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
