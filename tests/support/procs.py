"""Real child processes for end-to-end tests, and a raw HTTP client.

Spyglass wraps real programs (``spyglass run -- CMD``), forks workers and installs signal
handlers, so the tests run real processes instead of calling functions in-process.
``AppProcess`` starts each program in its own session (its own process group) so that a
failing test can always kill the program *and* every worker it forked, and keeps its
output in files so that a hung or crashed program can be diagnosed from the assertion.

``http_get``/``http_request`` use ``http.client`` directly: no retries, no redirects, no
path normalisation, and the request target goes out byte for byte (tests send raw
non-UTF-8 and odd paths to check that route labels never leak raw paths).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "AppProcess",
    "Headers",
    "cmdline",
    "descendants",
    "http_get",
    "http_request",
    "spyglass_argv",
]


class Headers(dict[str, str]):
    """Response headers as a dict with lower-cased keys and case-insensitive lookup.

    Repeated headers are joined with ``", "``, as RFC 9110 allows for list-valued fields.
    """

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, val in pairs:
            low = key.lower()
            self[low] = f"{dict.__getitem__(self, low)}, {val}" if low in self else val

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        dict.__setitem__(self, key.lower(), value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)


class _RawHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` whose request line is encoded as latin-1, not ASCII.

    The caller's path is turned into a latin-1 ``str`` first, so each byte of the original
    target maps back to exactly that byte on the wire. Control characters and spaces are
    still refused by ``http.client`` (they would break the request line itself).
    """

    def _encode_request(self, request: str) -> bytes:
        return request.encode("latin-1")


def _split_url(url: str | bytes) -> tuple[str, int, str]:
    """Return (host, port, request-target as a latin-1 str of the exact bytes to send)."""
    raw = url if isinstance(url, bytes) else url.encode("utf-8")
    if not raw.lower().startswith(b"http://"):
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    rest = raw[len(b"http://") :]
    slash = rest.find(b"/")
    authority, target = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
    parts = urlsplit("http://" + authority.decode("ascii"))
    host = parts.hostname or "127.0.0.1"
    return host, parts.port or 80, target.decode("latin-1")


def http_request(
    method: str,
    url: str | bytes,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, Headers, bytes]:
    """Send one HTTP/1.1 request and return (status, headers, body).

    ``url`` may be ``bytes`` to send a non-UTF-8 request target verbatim; a ``str`` is sent
    as its UTF-8 bytes. Nothing is normalised or percent-encoded. Connection errors and
    timeouts propagate to the caller.
    """
    host, port, target = _split_url(url)
    conn = _RawHTTPConnection(host, port, timeout=timeout)
    try:
        data = body.encode("utf-8") if isinstance(body, str) else body
        conn.request(method, target, body=data, headers=dict(headers or {}))
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, Headers(resp.getheaders()), payload
    finally:
        conn.close()


def http_get(
    url: str | bytes, headers: Mapping[str, str] | None = None, timeout: float = 5
) -> tuple[int, Headers, bytes]:
    """``GET`` ``url``; see ``http_request``."""
    return http_request("GET", url, headers=headers, timeout=timeout)


def spyglass_argv(*cmd: str, **opts: Any) -> list[str]:
    """Build ``[python, -m, spyglass, run, --opt value ..., --, *cmd]``.

    Keyword names become options with ``_`` turned into ``-`` (``service_name="x"`` gives
    ``--service-name x``). ``True`` gives a bare flag; ``False`` and ``None`` are left out.
    """
    argv = [sys.executable, "-m", "spyglass", "run"]
    for key, val in opts.items():
        if val is None or val is False:
            continue
        flag = "--" + key.replace("_", "-")
        if val is True:
            argv.append(flag)
        else:
            argv.extend([flag, str(val)])
    return [*argv, "--", *cmd]


def run_script_under_agent(source: str, cwd: Path, env: Mapping[str, str], *args: str,
                           service_name: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Write ``source`` to ``cwd/app.py`` and run it to completion under ``spyglass run``, with
    ``env`` over this process's environment; stdout and stderr are captured as text."""
    script = cwd / "app.py"
    script.write_text(source)
    argv = spyglass_argv(sys.executable, str(script), *args, service_name=service_name)
    return subprocess.run(argv, env={**os.environ, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid`` from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def descendants(pid: int, include_zombies: bool = False) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...) found via /proc.

    Zombies (exited, not yet reaped) are left out unless ``include_zombies``; their own
    children have been re-parented already.
    """
    parent_of: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                parent_of[int(entry)] = stat
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        kids = sorted(p for p, (_, ppid) in parent_of.items() if ppid == current)
        frontier.extend(kids)
        found.extend(k for k in kids if include_zombies or parent_of[k][0] != "Z")
    return found


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces ("" if gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()


class AppProcess:
    """A program under test, run as a real child process in its own process group.

    ``env`` entries are layered over a copy of ``os.environ`` (a value of ``None`` removes
    the variable); pass ``inherit_env=False`` to start from an empty environment instead.
    Used as a context manager it starts the program on entry (if not started yet) and
    always SIGKILLs the whole process group on exit, so no test leaks workers.
    """

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        *,
        inherit_env: bool = True,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.cwd = None if cwd is None else str(cwd)
        base = dict(os.environ) if inherit_env else {}
        for key, val in (env or {}).items():
            if val is None:
                base.pop(key, None)
            else:
                base[key] = str(val)
        self.env = base
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._out_path: str | None = None
        self._err_path: str | None = None
        self._cached: tuple[str, str] | None = None

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> AppProcess:
        """Launch the program (new session, stdin from /dev/null, output to temp files)."""
        if self.proc is not None:
            raise RuntimeError("AppProcess already started")
        self._dir = tempfile.mkdtemp(prefix="spyglass-test-proc-")
        self._out_path = os.path.join(self._dir, "stdout")
        self._err_path = os.path.join(self._dir, "stderr")
        with open(self._out_path, "wb") as out, open(self._err_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited (negative: killed by that signal)."""
        return self._require().poll()

    def _require(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("AppProcess not started")
        return self.proc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` to the process itself (not its group) and wait for it to exit.

        Returns the exit code. If it does not exit within ``timeout`` seconds, SIGKILL the
        whole group and raise ``AssertionError`` with the program's output.
        """
        proc = self._require()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                raise AssertionError(
                    f"process {proc.pid} did not exit within {timeout}s after signal "
                    f"{signal.Signals(sig).name}; killed its group\n{self.describe()}"
                ) from None
        return int(proc.returncode)

    def kill_group(self) -> None:
        """SIGKILL every process in the program's process group and reap the leader."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def close(self) -> None:
        """Kill the group, keep the output in memory and delete the temp files."""
        if self.proc is None:
            return
        self.kill_group()
        if self._cached is None:
            self._cached = (self.stdout(), self.stderr())
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> AppProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # output ----------------------------------------------------------------------------

    def _read(self, path: str | None, index: int) -> str:
        if self._cached is not None:
            return self._cached[index]
        if path is None:
            return ""
        try:
            return Path(path).read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stdout(self) -> str:
        """Everything the program wrote to stdout so far."""
        return self._read(self._out_path, 0)

    def stderr(self) -> str:
        """Everything the program wrote to stderr so far."""
        return self._read(self._err_path, 1)

    def describe(self) -> str:
        """A diagnostic block: argv, exit code, and the tail of both output streams."""
        code = None if self.proc is None else self.proc.poll()
        return (
            f"argv: {self.argv}\nreturncode: {code}\n"
            f"--- stdout (tail) ---\n{self.stdout()[-4000:]}\n"
            f"--- stderr (tail) ---\n{self.stderr()[-4000:]}"
        )

    # inspection ------------------------------------------------------------------------

    def children(self) -> list[int]:
        """All live descendant pids (children, grandchildren, ...) found via /proc."""
        return descendants(self._require().pid)

    def wait_http(self, url: str | bytes, timeout: float = 30, status: int | None = None) -> int:
        """Poll ``GET url`` until it answers (with ``status``, if given); return the status.

        Raises ``AssertionError`` with the program's output if it exits first or the
        deadline passes.
        """
        proc = self._require()
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"process exited before {url!r} answered\n{self.describe()}")
            try:
                code, _, _ = http_get(url, timeout=2)
                if status is None or code == status:
                    return code
                last = f"status {code}"
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{url!r} did not answer"
                    f"{'' if status is None else f' with {status}'} within {timeout}s "
                    f"(last: {last!r})\n{self.describe()}"
                )
            time.sleep(0.1)
