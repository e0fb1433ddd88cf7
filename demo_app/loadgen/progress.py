"""The progress line shown while load runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from demo_app.loadgen.stats import Stats


class ProgressPrinter:
    """Rewrites one line on a terminal; elsewhere (logs, CI) prints a line every ``every`` s."""

    def __init__(self, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self._tty = self.stream.isatty()
        self._last = 0.0

    def __call__(self, stats: Stats) -> None:
        """Show the current numbers."""
        if self._tty:
            print("\r" + stats.progress_line(), end="", file=self.stream, flush=True)
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            print(stats.progress_line(), file=self.stream, flush=True)

    def finish(self) -> None:
        """End the rewritten line, so what follows starts on its own line."""
        if self._tty:
            print(file=self.stream, flush=True)
