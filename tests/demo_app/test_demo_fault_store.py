"""Fault switches written by one process are seen by every other process of the service."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.demo_app.harness import REPO_ROOT

from demo_app import faults


def test_a_switch_reaches_another_process(tmp_path: Path) -> None:
    path = tmp_path / "faults-orders.json"
    reader = faults.FaultStore("orders", path)
    assert reader.get("slow_sql") is None
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from demo_app import faults; "
            "faults.FaultStore('orders', Path(sys.argv[1])).set('slow_sql', True, 0.25)",
            str(path),
        ],
        cwd=REPO_ROOT,
        check=True,
    )
    assert writer.returncode == 0
    assert reader.get("slow_sql") == faults.ActiveFault(0.25)
    faults.FaultStore("orders", path).set("slow_sql", False)
    assert reader.get("slow_sql") is None


def test_defaults_routes_and_rejections(tmp_path: Path) -> None:
    store = faults.FaultStore("storefront", tmp_path / "f.json")
    store.set("hang", True)
    assert store.get("hang") == faults.ActiveFault(300.0)
    store.set("latency", True, 0.2, "/products/{product_id}")
    assert store.delay("/products/{product_id}") == 0.2
    assert store.delay("/products") == 0.0
    with pytest.raises(ValueError, match="storefront has no fault 'task_failure_rate'"):
        store.set("task_failure_rate", True)
    store.clear()
    assert store.active() == {}


def test_rates_and_exempt_routes(tmp_path: Path) -> None:
    store = faults.FaultStore("payments", tmp_path / "f.json")
    store.set("error_rate", True, 1.0)
    with pytest.raises(faults.InjectedFault, match="injected error on payments /payments"):
        faults.apply_sync(store, "/payments")
    faults.apply_sync(store, "/_admin/faults")  # repairable while broken
    faults.apply_sync(store, "/healthz")
    store.set("error_rate", True, 0.0)
    faults.apply_sync(store, "/payments")


def test_async_hang_ends_when_switched_off(tmp_path: Path) -> None:
    store = faults.FaultStore("storefront", tmp_path / "f.json")
    store.set("hang", True, 30)

    async def hang_then_release() -> float:
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.3, store.set, "hang", False)
        await faults.apply_async(store, "/products")
        return time.monotonic() - started

    assert 0.3 <= asyncio.run(hang_then_release()) < 2
