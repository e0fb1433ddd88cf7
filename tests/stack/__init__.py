"""Stack tests: compose.yaml, collectors/ and alerts/ checked with the real tools.

Shared helpers live here (conftest.py holds the fixtures): repository paths, YAML loading,
and the mapping between compose bind mounts and host paths.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS = REPO_ROOT / "alerts"
COLLECTORS = REPO_ROOT / "collectors"
ALERTMANAGER_BIN = "prometheus-alertmanager" if shutil.which("prometheus-alertmanager") else (
    "alertmanager"
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def require_tool(name: str) -> str:
    """Path of a required binary; its absence is a setup failure, not a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not on PATH (apt-get install prometheus prometheus-alertmanager)")
    return path


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a compose service's bind mounts (short syntax)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (REPO_ROOT / source).resolve()
    return mounts


def to_host(path: str, mounts: dict[str, Path]) -> str:
    """Translate a container path through the bind mounts (longest mount target first)."""
    for target in sorted(mounts, key=len, reverse=True):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return str(mounts[target]) + path[len(target.rstrip("/")):]
    raise AssertionError(f"{path} is not under any bind mount {sorted(mounts)}")


@contextlib.contextmanager
def running_prometheus(config: Path, data_dir: Path, port: int) -> Iterator[str]:
    """The real Prometheus on loopback with the flags the end-to-end tests need: alerts
    resent every second, exemplar storage on. Yields its base URL; prints its output on exit
    (pytest shows it only when the test failed)."""
    from tests.support.procs import AppProcess

    argv = [require_tool("prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}", f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s", "--enable-feature=exemplar-storage"]
    with AppProcess(argv) as proc:
        proc.wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30, status=200)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            print(f"prometheus:\n{proc.describe()}")
