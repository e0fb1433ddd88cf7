"""Process helpers: free ports, waiting for HTTP, CPU time and RSS of a process tree via /proc.

CPU per request is ``utime + stime`` of the server's whole process tree (gunicorn master and
worker, or the uvicorn process, plus every thread, since /proc/<pid>/stat counts all threads)
over the measured window, so agent work done in background threads is charged to the agent.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        conn.request("GET", "/" + path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None,
              want: int | None = None) -> float:
    """Poll until ``url`` answers (``want`` status if given); returns the elapsed seconds."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            status, _ = http_get(url, timeout=1.0)
            if want is None or status == want:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(name))
    return tree


def tree_pids(root: int) -> list[int]:
    tree = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3); utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(root: int) -> float:
    return sum(cpu_seconds(p) for p in tree_pids(root))


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Server:
    """A started app server; ``worker`` is the pid that handles requests."""

    proc: subprocess.Popen[bytes]
    worker: int
    startup_s: float

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def leaf_worker(root: int) -> int:
    """The process that serves requests: gunicorn's (single) worker, or uvicorn itself."""
    descendants = [p for p in tree_pids(root) if p != root]
    return descendants[-1] if descendants else root


def loadavg1() -> float:
    """The machine's 1-minute load average: how much else was running during a window."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_times() -> list[int]:
    """The machine's ``cpu`` line of /proc/stat, in ticks: user, nice, system, idle, iowait,
    irq, softirq, steal, ..."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def steal_pct(before: list[int], after: list[int]) -> float:
    """Per cent of all the machine's CPU time between two :func:`cpu_times` readings that the
    hypervisor gave to other guests (steal). On a shared VM it is what makes windows of one
    round disagree: session 18 saw 16 % and the same variant's CPU per request vary by half."""
    spent = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(spent)
    return 100.0 * spent[7] / total if total > 0 and len(spent) > 7 else 0.0
