"""Command line of the demo: run the shop (default) or flip a fault.

python -m demo_app [--duration N] [--rps R] [--concurrency C] [--no-load]
python -m demo_app fault SERVICE NAME on|off [--value X] [--route TEMPLATE]
"""

from __future__ import annotations

import argparse
import sys

from demo_app import config, faultcli, run


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo_app",
        description="Run the Spyglass demo shop with load. Subcommand: fault (see fault -h).",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: Ctrl-C)")
    parser.add_argument("--rps", type=float, default=5.0, help="load: requests per second")
    parser.add_argument("--concurrency", type=int, default=10, help="load: max in flight")
    parser.add_argument("--no-load", action="store_true", help="start the services only")
    return parser


def _fault_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo_app fault",
        description="Switch a fault of a running demo on or off.",
        epilog=faultcli.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("service", choices=config.SERVICE_NAMES)
    parser.add_argument("name", help="fault name, see below")
    parser.add_argument("state", choices=("on", "off"))
    parser.add_argument("--value", type=float, default=None, help="rate, seconds or factor")
    parser.add_argument("--route", default=None, help="latency: only this route template")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the one command or to ``fault``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fault"]:
        args = _fault_parser().parse_args(argv[1:])
        return faultcli.main(args.service, args.name, args.state, args.value, args.route)
    args = _run_parser().parse_args(argv)
    options = run.RunOptions(args.duration, args.rps, args.concurrency, load=not args.no_load)
    return run.main(options)


if __name__ == "__main__":
    sys.exit(main())
