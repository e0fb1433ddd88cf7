"""``spyglass profile`` and ``spyglass dump``: py-spy on a running app (by pid, service or port).

``spyglass profile --pid PID --duration 10 --format speedscope -o FILE`` records one process.
``--service NAME`` or ``--port PORT`` records every Python process of the app (a gunicorn
arbiter and its workers, uvicorn's workers...) at the same time, one py-spy per process, and
writes **one file per process**: ``FILE`` with ``.<pid>`` put before its extension
(``out.json`` -> ``out.1234.json``). Separate files because workers are separate programs to
look at (an imbalance between them is itself a finding) and speedscope opens one file per tab;
with a single process the file is exactly ``FILE``. ``spyglass dump`` prints every thread's
stack of each process (``py-spy dump``).

Exit status: 0 when every process was recorded or dumped, 1 when py-spy failed for any of them
(the message says why, and for a ptrace refusal how to grant it), 2 for bad usage or when no
process matched.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spyglass.profiling import discover, pyspy

__all__ = ["add_parser", "output_paths", "run_dump", "run_profile"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_FORMATS = {"speedscope": ".speedscope.json", "flamegraph": ".svg"}


def _add_targets(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pid", type=int, action="append", metavar="PID",
                       help="a process id (repeat for several)")
    group.add_argument("--service", metavar="NAME",
                       help="every Python process whose OTEL_SERVICE_NAME is NAME")
    group.add_argument("--port", type=int, metavar="PORT",
                       help="every Python process listening on PORT, and its workers")


def add_parser(subparsers: Any) -> None:
    """Add ``profile`` and ``dump`` to a CLI's sub-parsers; ``args.func(args)`` runs them."""
    profile = subparsers.add_parser(
        "profile", help="record a CPU profile of a running app with py-spy",
        description="Sample a running app's Python stacks with py-spy and write a speedscope "
                    "or flame graph file. With --service or --port every process of the app is "
                    "recorded at once, one file per process (FILE.<pid>.<ext>).")
    _add_targets(profile)
    profile.add_argument("--duration", type=float, default=10.0, metavar="SECONDS",
                         help="how long to sample (default: %(default)s)")
    profile.add_argument("--format", choices=sorted(_FORMATS), default="speedscope",
                         help="output format (default: %(default)s)")
    profile.add_argument("-o", "--output", metavar="FILE",
                         help="output file (default: profile.speedscope.json or profile.svg)")
    profile.add_argument("--rate", type=int, default=100, metavar="HZ",
                         help="samples per second (default: %(default)s)")
    profile.add_argument("--idle", action="store_true",
                         help="include idle threads (waiting on I/O or locks)")
    profile.add_argument("--nonblocking", action="store_true",
                         help="never pause the app while reading it (less accurate)")
    profile.set_defaults(func=run_profile)

    dump = subparsers.add_parser(
        "dump", help="print every thread's stack of a running app (py-spy dump)",
        description="Print the current Python stack of every thread, for one process or every "
                    "process of an app.")
    _add_targets(dump)
    dump.set_defaults(func=run_dump)


def _targets(args: argparse.Namespace) -> list[int] | None:
    if args.pid:
        return sorted(set(args.pid))
    if args.service:
        pids = discover.pids_for_service(args.service)
        what = f"service {args.service!r} (no Python process has OTEL_SERVICE_NAME={args.service})"
    else:
        pids = discover.pids_for_port(args.port)
        what = f"port {args.port} (no Python process listens on it)"
    if not pids:
        sys.stderr.write(f"spyglass: error: nothing to profile for {what}\n")
        return None
    return pids


def output_paths(output: str, pids: list[int]) -> dict[int, Path]:
    """``FILE`` for one pid, else ``FILE`` with ``.<pid>`` before its extension, per pid."""
    path = Path(output)
    if len(pids) == 1:
        return {pids[0]: path}
    suffix = "".join(path.suffixes[-1:])
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    return {pid: path.with_name(f"{stem}.{pid}{suffix}") for pid in pids}


def run_profile(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.rate <= 0:
        sys.stderr.write("spyglass: error: --duration and --rate must be positive\n")
        return EXIT_USAGE
    pids = _targets(args)
    if pids is None:
        return EXIT_USAGE
    output = args.output or "profile" + _FORMATS[args.format]
    paths = output_paths(output, pids)
    running: dict[int, tuple[subprocess.Popen[bytes], Any]] = {}
    failures: list[pyspy.PySpyError] = []
    try:
        for pid, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            argv = pyspy.record_command(pid, str(path), args.duration, args.format, args.rate,
                                        nonblocking=args.nonblocking, idle=args.idle)
            err = tempfile.TemporaryFile()  # noqa: SIM115 - closed after the wait
            running[pid] = (subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=err), err)
    except pyspy.PySpyError as exc:
        failures.append(exc)
    except OSError as exc:
        failures.append(pyspy.PySpyError(f"cannot run py-spy: {exc}"))
    sys.stderr.write(f"spyglass: recording {len(running)} process(es) for {args.duration:g}s\n")
    deadline = time.monotonic() + args.duration + 60
    for pid, (proc, err) in running.items():
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        err.close()
        if code != 0 or not paths[pid].is_file():
            failures.append(pyspy.record_failure(pid, text, code))
        else:
            print(f"{paths[pid]}\tpid {pid}")
    return _report(failures)


def _report(failures: list[pyspy.PySpyError]) -> int:
    if not failures:
        return EXIT_OK
    hint = False
    for exc in failures:
        text = str(exc)
        if isinstance(exc, pyspy.PermissionProblem):
            text = text.split("\n", 1)[0]
            hint = True
        sys.stderr.write(f"spyglass: error: {text}\n")
    if hint:
        sys.stderr.write(f"spyglass: {pyspy.GRANT_HINT}\n")
    return EXIT_FAILED


def run_dump(args: argparse.Namespace) -> int:
    pids = _targets(args)
    if pids is None:
        return EXIT_USAGE
    failures: list[pyspy.PySpyError] = []
    for pid in pids:
        try:
            text = pyspy.dump(pid)
        except pyspy.PySpyError as exc:
            failures.append(exc)
            continue
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    return _report(failures)


def main(argv: list[str] | None = None) -> int:
    """``python -m spyglass.profiling.cli profile|dump ...`` (same as ``spyglass profile|dump``)."""
    parser = argparse.ArgumentParser(prog="spyglass")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
