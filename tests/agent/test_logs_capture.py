"""Logging under the agent: the console is untouched and every record reaches Loki.

The same script runs with and without ``spyglass run``: its stdout, stderr (basicConfig's
lines and Python's traceback of the uncaught exception) and exit status must be identical.
Loki (a push API stand-in) must get the records of every logger, including one that does not
propagate, with exactly the three contract labels, and the uncaught exception as critical.
"""

from __future__ import annotations

import subprocess
import sys

from tests.agent.robust_apps.harness import APPS_DIR
from tests.support.loki import LokiReceiver
from tests.support.otlp import OTLPReceiver
from tests.support.procs import spyglass_argv
from tests.support.waiting import free_port

SCRIPT = ["python", "log_script.py"]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "SPYGLASS_"))}
    full.update(env)
    return subprocess.run(argv, cwd=APPS_DIR, env=full, capture_output=True, text=True,
                          timeout=30, check=False)


def test_console_unchanged_and_every_record_shipped() -> None:
    plain = _run([sys.executable, *SCRIPT[1:]], {})
    assert plain.returncode == 1 and "ValueError: script failed on purpose" in plain.stderr

    with LokiReceiver() as loki, OTLPReceiver() as otlp:
        wrapped = _run(spyglass_argv(*SCRIPT, metrics_port=free_port(),
                                     service_name="logsvc", environment="ci"),
                       {"SPYGLASS_LOKI_URL": loki.endpoint,
                        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint})
        assert wrapped.returncode == plain.returncode
        assert wrapped.stdout == plain.stdout
        # Python's traceback names the script's own path and lines: identical bytes.
        assert wrapped.stderr == plain.stderr

        entries = loki.wait_for(lambda e: "script failed on purpose" in e.line, timeout=10)
        entries = loki.entries()
    assert not loki.errors
    for entry in entries:
        assert set(entry.labels) == {"service_name", "environment", "level"}, entry.labels
        assert entry.labels["service_name"] == "logsvc"
        assert entry.labels["environment"] == "ci"
    by_text = {e.line: e.labels["level"] for e in entries}

    def level_of(fragment: str) -> str:
        found = [lvl for line, lvl in by_text.items() if fragment in line]
        assert len(found) == 1, (fragment, list(by_text))
        return found[0]

    assert level_of("order 42 placed") == "info"
    assert level_of("root warning") == "warning"
    assert level_of("private error 7") == "error"  # propagate=False logger
    assert level_of("script failed on purpose") == "critical"
    crash = next(e.line for e in entries if "script failed on purpose" in e.line)
    assert "Traceback" in crash and "ValueError" in crash
    assert not any("below basicConfig" in line for line in by_text)
