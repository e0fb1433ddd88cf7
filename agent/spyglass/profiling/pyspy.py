"""Running py-spy: finding the binary, ``dump`` and ``record``, and its ptrace problem.

py-spy reads another process's memory from outside (``process_vm_readv``/ptrace), so nothing
runs inside the profiled app, but the kernel must allow the attach. That is refused in a
container without the ``SYS_PTRACE`` capability, and for non-root users by Yama
(``kernel.yama.ptrace_scope``). :class:`PermissionProblem` carries one message saying how to
grant it; callers show it once and carry on.

Which binary: ``$SPYGLASS_PYSPY`` if set (tests point it at a failing stand-in), else the
``py-spy`` installed next to this interpreter (the ``profiling`` extra), else ``py-spy`` on
``PATH``. The interpreter's own scripts directory comes before ``PATH`` because a version
manager's shim there (pyenv) costs ~250 ms per call and the watchdog calls it from inside the app.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_PYSPY",
    "GRANT_HINT",
    "PermissionProblem",
    "PySpyError",
    "PySpyMissing",
    "dump",
    "dump_json",
    "find_pyspy",
    "format_threads",
    "record_command",
]

ENV_PYSPY = "SPYGLASS_PYSPY"
GRANT_HINT = (
    "py-spy needs permission to read the process's memory (ptrace). Grant it: in Docker run "
    "the container with --cap-add SYS_PTRACE (compose: cap_add: [SYS_PTRACE]; Kubernetes: "
    "securityContext.capabilities.add: [SYS_PTRACE]); on a host run as root or allow it with "
    "'sysctl kernel.yama.ptrace_scope=0'"
)
_PERMISSION_MARKERS = ("permission denied", "operation not permitted", "sys_ptrace", "eperm")


class PySpyError(RuntimeError):
    """py-spy ran and failed; the message has its error output."""


class PySpyMissing(PySpyError):
    """No py-spy binary was found."""


class PermissionProblem(PySpyError):
    """py-spy could not attach: no ptrace permission. The message says how to grant it."""


def find_pyspy() -> str | None:
    """The py-spy executable to run, or None if there is none."""
    configured = os.environ.get(ENV_PYSPY)
    if configured:
        return configured
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "py-spy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("py-spy")


def _require() -> str:
    binary = find_pyspy()
    if binary is None:
        raise PySpyMissing("py-spy is not installed: pip install 'spyglass-apm[profiling]' "
                           f"(or pip install py-spy), or set {ENV_PYSPY} to its path")
    return binary


def _failure(pid: int, stderr: str, returncode: int) -> PySpyError:
    text = stderr.strip()
    if any(marker in text.lower() for marker in _PERMISSION_MARKERS):
        return PermissionProblem(f"py-spy cannot attach to process {pid}: {text.splitlines()[0]}"
                                 f"\n{GRANT_HINT}")
    return PySpyError(f"py-spy failed on process {pid} (exit {returncode}): "
                      f"{text[-2000:] or 'no output'}")


def _run_dump(pid: int, extra: list[str], timeout: float) -> str:
    argv = [_require(), "dump", "--pid", str(pid), *extra]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise PySpyError(f"py-spy dump of process {pid} took longer than {timeout}s") from None
    except OSError as exc:
        raise PySpyError(f"cannot run py-spy ({argv[0]}): {exc}") from None
    if result.returncode != 0:
        raise _failure(pid, result.stderr or result.stdout, result.returncode)
    return result.stdout


def dump(pid: int, timeout: float = 15.0, nonblocking: bool = False) -> str:
    """Every thread's Python stack in ``pid``, as py-spy's text output."""
    return _run_dump(pid, ["--nonblocking"] if nonblocking else [], timeout)


def dump_json(pid: int, timeout: float = 15.0, nonblocking: bool = False) -> list[dict[str, Any]]:
    """Every thread of ``pid`` as py-spy's JSON: thread_id, os_thread_id, thread_name, frames."""
    extra = ["--json", *(["--nonblocking"] if nonblocking else [])]
    out = _run_dump(pid, extra, timeout)
    try:
        threads = json.loads(out)
    except json.JSONDecodeError as exc:
        raise PySpyError(f"py-spy dump --json gave unreadable output: {exc}") from None
    if not isinstance(threads, list):
        raise PySpyError("py-spy dump --json did not return a list of threads")
    return threads


def format_threads(threads: list[dict[str, Any]]) -> str:
    """py-spy's JSON threads as text, innermost frame first (like ``py-spy dump``)."""
    blocks = []
    for thread in threads:
        head = (f'Thread {thread.get("os_thread_id") or thread.get("thread_id")} '
                f'({"active" if thread.get("active") else "idle"}): '
                f'"{thread.get("thread_name") or "?"}"')
        lines = [head]
        for frame in thread.get("frames") or []:
            where = frame.get("short_filename") or frame.get("filename") or "?"
            lines.append(f'    {frame.get("name", "?")} ({where}:{frame.get("line", "?")})')
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def record_command(pid: int, output: str, duration: float, fmt: str, rate: int = 100,
                   nonblocking: bool = False, idle: bool = False) -> list[str]:
    """The ``py-spy record`` argv for one process."""
    argv = [_require(), "record", "--pid", str(pid), "--output", output,
            "--duration", str(max(1, round(duration))), "--format", fmt, "--rate", str(rate)]
    if nonblocking:
        argv.append("--nonblocking")
    if idle:
        argv.append("--idle")
    return argv


def record_failure(pid: int, stderr: str, returncode: int) -> PySpyError:
    """The error for a failed ``py-spy record`` (same classification as dump)."""
    return _failure(pid, stderr, returncode)
