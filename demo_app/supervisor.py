"""Child processes in their own process groups, stopped without leaving orphans.

Each service runs in a new session, so a Ctrl-C in the terminal reaches only the launcher,
which then stops the services: SIGTERM to each service's main process (the graceful stop of
uvicorn, gunicorn and celery alike, which pass it on to their own workers), a shared
deadline until every process of every group is gone, then SIGKILL for any group still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from demo_app.services import REPO_ROOT, ServiceCommand


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is running (zombies do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


@dataclass
class Child:
    """One started service: its process and its log file."""

    command: ServiceCommand
    log_path: Path
    proc: subprocess.Popen[bytes]
    _log: IO[bytes] = field(repr=False)

    @property
    def name(self) -> str:
        """The service name."""
        return self.command.name

    def log_tail(self, lines: int = 30) -> str:
        """The end of the service's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts services with their output in ``log_dir`` and stops them all reliably."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, command: ServiceCommand) -> Child:
        """Start ``command`` in a new session with stdout and stderr in its log file."""
        log_path = self.log_dir / f"{command.name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            command.argv,
            env=command.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(command, log_path, proc, log)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Services whose main process has ended."""
        return [c for c in self.children if c.proc.poll() is not None]

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Signal every main process, wait for their groups or ``timeout``, then SIGKILL."""
        for child in reversed(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.proc.pid, sig)
        deadline = time.monotonic() + timeout
        for child in self.children:
            while time.monotonic() < deadline:
                child.proc.poll()
                if child.proc.returncode is not None and not _group_alive(child.proc.pid):
                    break
                time.sleep(0.05)
        for child in self.children:
            if _group_alive(child.proc.pid):
                print(f"{child.name} did not stop within {timeout:.0f}s: killing it", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
            child._log.close()
