"""AppProcess runs real programs, waits on HTTP, stops by signal and kills whole groups."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest
from tests.support.procs import AppProcess, http_get, http_request, spyglass_argv
from tests.support.waiting import free_port, wait_until

# A tiny app: echoes the raw request target, forks one sleeping child, exits 3 on SIGTERM.
APP = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.path.encode("latin-1")  # the request line is read as latin-1
            self.send_response(200 if self.path != "/missing" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Child", str(child.pid))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[::-1])

        def log_message(self, *args):
            pass

    def on_term(signum, frame):
        print("got SIGTERM", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, on_term)
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo)
    print("serving", flush=True)
    server.serve_forever()
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def test_app_lifecycle(app_script: Path) -> None:
    port = free_port()
    with AppProcess([sys.executable, str(app_script), str(port)]) as app:
        base = f"http://127.0.0.1:{port}"
        assert app.wait_http(f"{base}/ready", timeout=20) == 200
        assert app.wait_http(f"{base}/missing", status=404) == 404
        assert "serving" in app.stdout()

        status, headers, body = http_get(f"{base}/caf\xe9/%ZZ/;x?q=\u2603")
        assert status == 200
        assert body == "/caf\xe9/%ZZ/;x?q=\u2603".encode()  # sent as UTF-8, unchanged
        status, _, body = http_get(base.encode() + b"/raw/\xff\xfe")
        assert (status, body) == (200, b"/raw/\xff\xfe")  # non-UTF-8 bytes, verbatim
        status, _, body = http_request("POST", base + "/", body=b"abc")
        assert (status, body) == (201, b"cba")

        child = int(headers["x-child"])
        assert headers["X-Child"] == str(child)
        assert app.children() == [child]

        assert app.stop() == 3
        assert app.returncode == 3
        assert "got SIGTERM" in app.stdout()
        assert _alive(child)  # stop() signals the process only, not its group
    wait_until(lambda: not _alive(child), timeout=5, message="group kill on exit")


def test_stop_reports_signal_exit(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with AppProcess(argv, cwd=str(tmp_path)) as app:
        app.wait_http(f"http://127.0.0.1:{port}/", status=200)
        assert app.stop() == -signal.SIGTERM  # no handler: killed by the signal
        assert app.returncode == -signal.SIGTERM


def test_stop_timeout_kills_group_and_raises() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('up', flush=True); time.sleep(60)"
    )
    with AppProcess([sys.executable, "-c", code]) as app:
        wait_until(lambda: "up" in app.stdout(), timeout=10)
        with pytest.raises(AssertionError, match=r"did not exit within 0\.5s"):
            app.stop(timeout=0.5)
        assert app.returncode == -signal.SIGKILL


def test_wait_http_reports_early_exit() -> None:
    code = "import sys; print('bye'); print('oops', file=sys.stderr); sys.exit(2)"
    app = AppProcess([sys.executable, "-c", code], env={"SPYGLASS_TEST_MARK": "1"})
    with app, pytest.raises(AssertionError) as info:
        app.wait_http(f"http://127.0.0.1:{free_port()}/", timeout=10)
    message = str(info.value)
    assert "process exited" in message and "returncode: 2" in message
    assert "bye" in message and "oops" in message
    assert app.stdout() == "bye\n"  # kept after the temp files are removed


def test_env_is_layered_and_removable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPYGLASS_TEST_INHERITED", "yes")
    monkeypatch.setenv("SPYGLASS_TEST_REMOVED", "yes")
    code = (
        "import os; print(os.environ.get('SPYGLASS_TEST_INHERITED'),"
        " os.environ.get('SPYGLASS_TEST_REMOVED'), os.environ.get('SPYGLASS_TEST_NEW'))"
    )
    env = {"SPYGLASS_TEST_REMOVED": None, "SPYGLASS_TEST_NEW": "new"}
    with AppProcess([sys.executable, "-c", code], env=env) as app:
        wait_until(lambda: app.returncode is not None, timeout=10)
        assert app.stdout() == "yes None new\n"


def test_spyglass_argv() -> None:
    argv = spyglass_argv(
        "gunicorn", "app:app", service_name="shop", metrics_port=9464, console=True, debug=False
    )
    assert argv == [
        sys.executable,
        "-m",
        "spyglass",
        "run",
        "--service-name",
        "shop",
        "--metrics-port",
        "9464",
        "--console",
        "--",
        "gunicorn",
        "app:app",
    ]
