"""Find the processes of a running app: by service name or by listening port, via /proc.

Why /proc and not a registry file: the app may have been started by anything (``spyglass run``,
a process manager, compose) and workers come and go; the kernel's view is the one that is
always current. ``--service NAME`` matches ``OTEL_SERVICE_NAME=NAME`` in a process's initial
environment (``spyglass run`` puts it there when it execs, and forked or spawned workers
inherit it) or, for an app ``spyglass run`` runs in its own interpreter, the name that
process's ``spyglass run`` command line gave it;
``--port PORT`` finds the processes holding the listening socket (a gunicorn arbiter and its
workers all do) plus their Python descendants. Only Python processes are returned, since those
are what py-spy can read. Reading another user's ``/proc/<pid>/environ`` needs the same
permission as profiling it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["is_python", "pids_for_port", "pids_for_service"]

_PROC = Path("/proc")


def _pids() -> list[int]:
    return sorted(int(p.name) for p in _PROC.iterdir() if p.name.isdigit())


def is_python(pid: int) -> bool:
    """True if ``pid`` runs a Python interpreter (its executable's name starts with python)."""
    try:
        exe = os.readlink(_PROC / str(pid) / "exe")
    except OSError:
        return False
    return os.path.basename(exe).startswith("python")


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for pid in _pids():
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[pid] = int(fields[1])
    return parents


def _excluded() -> set[int]:
    """This command and its ancestors (they may carry the same environment)."""
    parents = _parents()
    out = {os.getpid()}
    pid = os.getpid()
    while pid in parents and parents[pid] > 1:
        pid = parents[pid]
        out.add(pid)
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]]


def _service_of(pid: int, launched: dict[tuple[str, ...], str | None]) -> str | None:
    env = _environ(pid)
    if env.get("OTEL_SERVICE_NAME"):
        return env["OTEL_SERVICE_NAME"]
    # An app that `spyglass run` runs in its own interpreter got its name after exec: read
    # it from that command line instead (its forked workers share the command line).
    argv = tuple(_cmdline(pid))
    if argv not in launched:
        try:
            from spyglass.cli import launched_service_name

            cwd = os.readlink(_PROC / str(pid) / "cwd")
            launched[argv] = launched_service_name(argv, env, cwd)
        except Exception:  # noqa: BLE001 - a process that went away, or unreadable
            launched[argv] = None
    return launched[argv]


def pids_for_service(name: str) -> list[int]:
    """Python processes of the service ``name``: ``OTEL_SERVICE_NAME=name`` in their
    environment, or started by a ``spyglass run`` command line that names them so."""
    skip = _excluded()
    launched: dict[tuple[str, ...], str | None] = {}
    return [pid for pid in _pids() if pid not in skip and is_python(pid)
            and _service_of(pid, launched) == name]


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A = TCP_LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def pids_for_port(port: int) -> list[int]:
    """Python processes holding a socket listening on ``port``, and their Python descendants."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return []
    holders: set[int] = set()
    for pid in _pids():
        try:
            fds = list((_PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    holders.add(pid)
                    break
            except OSError:
                continue
    parents = _parents()
    found = set(holders)
    frontier = list(holders)
    while frontier:
        current = frontier.pop()
        kids = [p for p, ppid in parents.items() if ppid == current and p not in found]
        found.update(kids)
        frontier.extend(kids)
    skip = _excluded()
    return sorted(p for p in found if p not in skip and is_python(p))
