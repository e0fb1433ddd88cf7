"""Fixtures for the stack tests: the repo's compose file, and copies of the Prometheus and
Alertmanager configs with container paths mapped back to the checkout.

compose.yaml mounts repository files into containers (e.g. ``./alerts/generated`` at
``/etc/prometheus/rules``); the configs name the container paths. To run the real promtool,
amtool, Prometheus and Alertmanager here, the fixtures read those mounts from compose.yaml and
rewrite the container paths to the host paths they come from, so the mapping is under test too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import COLLECTORS, REPO_ROOT, bind_mounts, load_yaml, to_host


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed (YAML anchors and merge keys resolved)."""
    return load_yaml(REPO_ROOT / "compose.yaml")


@pytest.fixture
def prometheus_config_copy(
    compose: dict[str, Any], tmp_path: Path
) -> Callable[[Callable[[dict[str, Any]], None] | None], Path]:
    """Write collectors/prometheus.yml to tmp_path with rule_files mapped to host paths.

    An optional ``edit(config)`` callback changes the parsed config before it is written.
    """
    mounts = bind_mounts(compose["services"]["prometheus"])

    def make(edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        config = load_yaml(COLLECTORS / "prometheus.yml")
        config["rule_files"] = [to_host(p, mounts) for p in config.get("rule_files", [])]
        if edit is not None:
            edit(config)
        out = tmp_path / "prometheus.yml"
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        return out

    return make


@pytest.fixture
def alertmanager_config_copy(
    compose: dict[str, Any], tmp_path: Path
) -> Callable[[Callable[[dict[str, Any]], None] | None], Path]:
    """Write collectors/alertmanager.yml to tmp_path with template globs mapped to host paths."""
    mounts = bind_mounts(compose["services"]["alertmanager"])

    def make(edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        config = load_yaml(COLLECTORS / "alertmanager.yml")
        config["templates"] = [to_host(p, mounts) for p in config.get("templates", [])]
        if edit is not None:
            edit(config)
        out = tmp_path / "alertmanager.yml"
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        return out

    return make
