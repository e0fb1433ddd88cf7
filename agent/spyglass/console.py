"""``--console``: one compact line per request on stderr, for local development.

stderr, not stdout: stdout belongs to the app (it may be a CLI's output or a pipe).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spyglass.server import RequestState

__all__ = ["print_line"]


def print_line(state: RequestState) -> None:
    import time

    ms = (time.perf_counter() - state.start) * 1000
    trace_id = "-"
    if state.span is not None:
        ctx = state.span.get_span_context()
        if ctx.is_valid:
            trace_id = format(ctx.trace_id, "032x")
    route = state.route or state.path[:80]
    line = f"spyglass [{os.getpid()}] {state.method} {route} {state.status} {ms:.1f}ms " \
           f"trace={trace_id}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
