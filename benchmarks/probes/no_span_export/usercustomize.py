"""Benchmark probe, never shipped: spans are made, measured and scrubbed as usual, but none is
encoded or queued for export (``spyglass.tracing.EXPORT.worker`` is None), while log lines
still are.

What it answers: how much of the request thread's cost under the real server is the span
encoding and the hand-off to the export thread, i.e. the most that moving encoding out of the
app's process (a sidecar encoder) could save there. Used as a ``threads.py`` variant:

    python benchmarks/threads.py --app fastapi --rounds 5 --variants \\
        'bare;spyglass;spyglass PYTHONPATH=benchmarks/probes/no_span_export'

Python imports ``usercustomize`` from ``PYTHONPATH`` after ``sitecustomize``, which is where
``spyglass run`` starts the agent: so the worker is dropped here if it already exists, and
``tracing.setup`` is wrapped for an agent started later.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from spyglass import tracing as _tracing

    _setup = _tracing.setup

    def _setup_without_span_export(config: Any) -> Any:
        provider = _setup(config)
        _tracing.EXPORT.worker = None
        return provider

    _tracing.setup = _setup_without_span_export  # type: ignore[assignment]
    _tracing.EXPORT.worker = None
except Exception as exc:  # noqa: BLE001 - a probe that did not apply must say so, not hide
    print(f"no_span_export probe not applied: {exc}", file=sys.stderr)
