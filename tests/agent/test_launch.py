"""``spyglass run`` runs a Python program of its own environment in its own interpreter
(:mod:`spyglass.launch`), and that program cannot tell: ``sys.argv``, ``sys.orig_argv``,
``sys.path[0]``, its ``__main__`` module (functions defined there still pickle into a spawned
process), its exit status, stdout and uncaught-exception report are what Python alone gives
it. Each case runs a probe program bare and under ``spyglass run`` and compares what the probe
reports; the probe also reports its command line, which tells one launch mode from the other.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from tests.agent import agent_env
from tests.support.procs import AppProcess, spyglass_argv
from tests.support.waiting import free_port

from spyglass import launch
from spyglass.cli import launched_service_name

PROBE = '''\
import json, multiprocessing, os, sys
import __main__


def square(x):
    return x * x


if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        squared = pool.apply(square, (7,))  # pickles a function of __main__ by reference
    agent = sys.modules.get("spyglass.agent")
    with open("/proc/self/cmdline", "rb") as fh:
        cmdline = fh.read().split(b"\\0")
    print(json.dumps({
        "argv": sys.argv, "orig_argv": sys.orig_argv, "path0": sys.path[0],
        "main": sorted(vars(__main__)), "file": getattr(__main__, "__file__", None),
        "spec": None if __main__.__spec__ is None else __main__.__spec__.name,
        "package": __main__.__package__, "loader": type(__main__.__loader__).__name__,
        "squared": squared, "pid": os.getpid(), "agent_env": "PYTHONPATH" in os.environ,
    }))
    print(json.dumps({"agent": bool(agent and agent._started),
                      "in_spyglass": b"spyglass" in cmdline}), file=sys.stderr)
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
'''

BOOM = '''\
def fail():
    raise ValueError("boom from the app")


print("before")
fail()
'''


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "boom.py").write_text(BOOM)
    (tmp_path / "probemod.py").write_text(PROBE)
    script = tmp_path / "bin" / "probe-script"  # a console script, as pip writes them
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\n{PROBE}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env_script = tmp_path / "bin" / "probe-env"
    env_script.write_text(f"#!/usr/bin/env {os.path.basename(sys.executable)}\n{PROBE}")
    env_script.chmod(env_script.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def _env() -> dict[str, str | None]:
    # `#!/usr/bin/env python3` must find this interpreter first (not a pyenv shim).
    env = agent_env(None, None)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    env["PYTHONPATH"] = None
    return env


def _run(argv: list[str], cwd: Path) -> tuple[int, dict, dict, AppProcess]:
    proc = AppProcess(argv, env=_env(), cwd=cwd)
    with proc:
        assert proc.proc is not None
        code = proc.proc.wait(timeout=60)
        lines = proc.stdout().splitlines()
        report = json.loads(lines[-1]) if lines else {}
        err = [line for line in proc.stderr().splitlines() if line.startswith("{")]
        mode = json.loads(err[-1]) if err else {}
        assert report["pid"] == proc.pid, "the program must keep the pid it was started with"
    return code, report, mode, proc


CASES = [
    pytest.param(lambda d: [sys.executable, "probe.py", "3"], id="python-script"),
    pytest.param(lambda d: [sys.executable, str(d / "probe.py"), "3"], id="python-abs-script"),
    pytest.param(lambda d: [sys.executable, "-m", "probemod", "3"], id="python-m-module"),
    pytest.param(lambda d: [str(d / "bin" / "probe-script"), "3"], id="console-script"),
    pytest.param(lambda d: [str(d / "bin" / "probe-env"), "3"], id="env-shebang"),
]


@pytest.mark.parametrize("cmd", CASES)
def test_python_program_runs_in_the_spyglass_process_exactly_as_python_runs_it(
        programs: Path, cmd) -> None:  # type: ignore[no-untyped-def]
    argv = cmd(programs)
    bare_code, bare, _, _ = _run(argv, programs)
    code, wrapped, mode, proc = _run(spyglass_argv(*argv, metrics_port=free_port()), programs)
    assert mode == {"agent": True, "in_spyglass": True}, proc.describe()
    assert code == bare_code == 3
    assert wrapped["agent_env"] and not bare["agent_env"]  # children get the bootstrap path
    for report in (bare, wrapped):
        report.pop("pid")
        report.pop("agent_env")
    assert wrapped == bare
    assert wrapped["squared"] == 49


@pytest.mark.parametrize("cmd", [
    pytest.param(lambda d: [sys.executable, "-u", "probe.py", "3"], id="interpreter-option"),
    pytest.param(lambda d: ["/bin/sh", "-c", f'exec "{sys.executable}" probe.py 3'],
                 id="shell"),
])
def test_anything_else_is_execd_with_the_agent_still_loaded(programs: Path, cmd) -> None:  # type: ignore[no-untyped-def]
    argv = cmd(programs)
    code, report, mode, proc = _run(spyglass_argv(*argv, metrics_port=free_port()), programs)
    assert code == 3, proc.describe()
    assert mode == {"agent": True, "in_spyglass": False}, proc.describe()
    assert report["squared"] == 49


def test_exec_option_always_execs(programs: Path) -> None:
    argv = [sys.executable, "probe.py", "3"]
    bare_code, bare, _, _ = _run(argv, programs)
    code, report, mode, proc = _run(spyglass_argv(*argv, metrics_port=free_port(),
                                                  exec=True), programs)
    assert mode == {"agent": True, "in_spyglass": False}, proc.describe()
    assert code == bare_code == 3
    assert report["argv"] == bare["argv"] and report["path0"] == bare["path0"]


def test_uncaught_exception_is_reported_as_python_reports_it(programs: Path) -> None:
    argv = [sys.executable, "boom.py"]
    bare = AppProcess(argv, env=_env(), cwd=programs)
    wrapped = AppProcess(spyglass_argv(*argv, metrics_port=free_port(), logs="false",
                                       traces="false"),
                         env=_env(), cwd=programs)
    with bare, wrapped:
        assert bare.proc is not None and wrapped.proc is not None
        assert wrapped.proc.wait(timeout=60) == bare.proc.wait(timeout=60) == 1
        assert wrapped.stdout() == bare.stdout() == "before\n"
        assert "ValueError: boom from the app" in bare.stderr()
        assert wrapped.stderr() == bare.stderr(), wrapped.describe()


def test_plan_execs_what_it_cannot_run_exactly(tmp_path: Path) -> None:
    """Only a program this interpreter would run with no options, and can compile, runs
    in-process: for anything else exec gives the real program its real behaviour."""
    env = {"PATH": os.environ["PATH"]}
    py = sys.executable

    def script(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o755)
        return str(path)

    good = script("good", f"#!{py}\nprint('hi')\n")
    assert launch.plan(good, [good], env) is not None
    assert launch.plan(py, [py, good], env) is not None
    assert launch.plan(py, [py, "-m", "json.tool"], env) is not None
    for cmd in ([py], [py, "-c", "pass"], [py, "-u", good], [py, "-m"], [py, "no-such-file"],
                [py, "-", good]):
        assert launch.plan(py, cmd, env) is None, cmd
    for path in (
        script("opts", f"#!{py} -u\nprint('hi')\n"),          # interpreter options
        script("sh", "#!/bin/sh\necho hi\n"),                # not Python
        script("bad", f"#!{py}\ndef (:\n"),                  # Python would report it
        script("other", "#!/usr/bin/env -S python3 -u\n"),   # env with options
        script("noexec", f"#!{py}\n"),
        shutil.which("true") or "/bin/true",                # a binary
    ):
        if path.endswith("noexec"):
            os.chmod(path, 0o644)                            # exec would say permission denied
        assert launch.plan(path, [path], env) is None, path
    # Another environment's interpreter (a virtualenv links to the base one): exec.
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(os.path.realpath(py))
    other = script("venv-script", f"#!{venv_bin / 'python'}\nprint('hi')\n")
    assert launch.plan(other, [other], env) is None


def test_launched_service_name_reads_a_spyglass_run_command_line(tmp_path: Path) -> None:
    """What `spyglass profile --service` matches for an app running in spyglass's process."""
    py = sys.executable
    env = {"PATH": os.environ["PATH"]}
    cwd = str(tmp_path)
    named = [py, "-m", "spyglass", "run", "--service-name", "shop", "--", "gunicorn", "x:app"]
    assert launched_service_name(named, env, cwd) == "shop"
    guessed = ["/venv/bin/spyglass", "run", "--", py, "-m", "gunicorn", "shop.wsgi"]
    assert launched_service_name(guessed, env, cwd) == "shop"
    assert launched_service_name(guessed, {**env, "OTEL_SERVICE_NAME": "env"}, cwd) == "env"
    for argv in ([py, "app.py"], [py, "-m", "spyglass", "profile", "--pid", "1"],
                 [py, "-m", "spyglass", "run", "--no-such-option", "--", "x"],
                 [py, "-m", "spyglass", "run", "--metrics-port", "nope", "--", "x"],
                 [py, "-m", "spyglass", "run"], [py, "-m", "spyglass"]):
        assert launched_service_name(argv, env, cwd) is None, argv
    (tmp_path / "pyproject.toml").write_text('[tool.spyglass]\nservice_name = "fromfile"\n')
    assert launched_service_name(guessed, env, cwd) == "fromfile"
