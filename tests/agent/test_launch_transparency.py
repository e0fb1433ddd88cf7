"""The agent never changes what the app does: responses (status, headers, body), the exit
status on SIGTERM or on its own exit, and stdout are the same with and without
``spyglass run``. Each framework's app runs twice side by side, once under the agent and
once bare, and takes the same requests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.agent import APPS, agent_env, launch
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, Headers, http_get, spyglass_argv
from tests.support.waiting import free_port

# Headers that differ between any two runs of the same app, agent or not.
_VOLATILE = {"date"}

CASES = [
    pytest.param(lambda p: ["gunicorn", "-w", "1", "-b", f"127.0.0.1:{p}", "flask_app:app"],
                 APPS, [], id="flask-gunicorn"),
    pytest.param(lambda p: ["uvicorn", "--port", str(p), "fastapi_app:app"], APPS, [],
                 id="fastapi-uvicorn"),
    # The console script itself and `python -m`: spyglass runs these in its own process.
    pytest.param(lambda p: [str(Path(sys.executable).parent / "gunicorn"), "-w", "1", "-b",
                            f"127.0.0.1:{p}", "flask_app:app"], APPS, [],
                 id="flask-gunicorn-script"),
    pytest.param(lambda p: [sys.executable, "-m", "uvicorn", "--port", str(p),
                            "fastapi_app:app"], APPS, [], id="fastapi-python-m-uvicorn"),
    pytest.param(lambda p: ["gunicorn", "-w", "1", "-b", f"127.0.0.1:{p}", "djproj.wsgi"],
                 APPS / "djproj", [{"Host": "evil.example"}, {"Host": "127.0.0.1:1"}],
                 id="django-gunicorn"),
    pytest.param(lambda p: [sys.executable, "wsgi_app.py"], APPS, [], id="wsgi-wsgiref"),
    pytest.param(lambda p: ["uvicorn", "--port", str(p), "asgi_app:app"], APPS, [],
                 id="asgi-uvicorn"),
]


def _exchange(base: str, odd_headers: list[dict[str, str]]) -> list[tuple[int, Headers, bytes]]:
    answers = []
    for path in ("/items/7", "/health", "/no/such/route", "/items/not-a-number"):
        answers.append(http_get(base + path))
    for headers in odd_headers:
        answers.append(http_get(base + "/items/7", headers=headers))
    for _, headers, _ in answers:
        for name in _VOLATILE:
            headers.pop(name, None)
    return answers


@pytest.mark.parametrize(("cmd", "cwd", "odd_headers"), CASES)
def test_responses_and_sigterm_exit_status_unchanged(
    otlp_receiver: OTLPReceiver, loki_receiver: LokiReceiver, cmd, cwd: Path,  # type: ignore[no-untyped-def]
    odd_headers: list[dict[str, str]],
) -> None:
    agent_port, bare_port = free_port(), free_port()
    with_agent = launch(cmd(agent_port), otlp_receiver, loki_receiver, app_port=agent_port,
                        cwd=cwd, env={"PORT": str(agent_port)})
    bare = AppProcess(cmd(bare_port), env={**agent_env(None, None), "PORT": str(bare_port)},
                      cwd=cwd)
    with with_agent.proc, bare:
        bare.wait_http(f"http://127.0.0.1:{bare_port}/health", status=200)
        got = _exchange(with_agent.base, odd_headers)
        want = _exchange(f"http://127.0.0.1:{bare_port}", odd_headers)
        assert got == want
        codes = (with_agent.proc.stop(), bare.stop())
        assert codes[0] == codes[1], f"exit status {codes[0]} under the agent, {codes[1]} bare"


def test_exit_code_and_stdout_unchanged(tmp_path: Path) -> None:
    bare = AppProcess([sys.executable, "script_app.py", "3"], cwd=APPS,
                      env=agent_env(None, None))
    wrapped = AppProcess(
        spyglass_argv(sys.executable, "script_app.py", "3", metrics_port=free_port()),
        cwd=APPS, env=agent_env(None, None))
    with bare, wrapped:
        # Wait for the programs' own exit (AppProcess.stop would send SIGTERM first).
        assert wrapped.proc is not None and bare.proc is not None
        assert wrapped.proc.wait(timeout=30) == 3 == bare.proc.wait(timeout=30), (
            wrapped.describe())
        expected = "hello from script_app\nsecond line\nno newline at end"
        assert bare.stdout() == expected
        assert wrapped.stdout() == expected
