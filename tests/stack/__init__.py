"""Stack tests: compose.yaml, collectors/ and alerts/ checked with the real tools.

Shared helpers live here (conftest.py holds the fixtures): repository paths, YAML loading,
and the mapping between compose bind mounts and host paths.
"""

from __future__ import annotations

import shutil
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
