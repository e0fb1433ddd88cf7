"""Machine notes recorded with every run: cores, CPU, kernel, Python and package versions."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from harness.contenders import DD_BIN, OTEL_BIN

_PROJECT_PKGS = ("spyglass-apm", "opentelemetry-sdk", "flask", "gunicorn", "fastapi", "uvicorn",
                 "starlette", "prometheus-client", "wrapt")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _venv_version(bindir: Path, dist: str) -> str:
    try:
        return subprocess.run([str(bindir / "python"), "-c",
                               f"import importlib.metadata as m; print(m.version({dist!r}))"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "absent"


def _tool(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "absent"


def agent_commit() -> str:
    """The repo commit the agent code came from, with "+dirty" if agent/ had local edits
    (the agent is installed in editable mode, so each server start runs the working tree)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "agent"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _spyglass_build() -> str:
    """"compiled" when the hot path is mypyc's extension modules (setup.py), else "python"."""
    try:
        import spyglass.server
    except Exception:  # noqa: BLE001
        return "absent"
    return "compiled" if (spyglass.server.__file__ or "").endswith(".so") else "python"


def notes() -> dict[str, object]:
    import os

    versions = {}
    for dist in _PROJECT_PKGS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "os": _tool(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "project_env": versions,
        "spyglass_build": _spyglass_build(),
        "otel_env": {d: _venv_version(OTEL_BIN, d) for d in
                     ("opentelemetry-distro", "opentelemetry-sdk",
                      "opentelemetry-instrumentation-flask",
                      "opentelemetry-instrumentation-fastapi")},
        "ddtrace_env": {"ddtrace": _venv_version(DD_BIN, "ddtrace")},
        "wrk": _tool(["wrk", "-v"]),
        "nginx": _tool(["nginx", "-v"]),
    }
