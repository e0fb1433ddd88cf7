"""Bad configuration stops ``spyglass run`` with status 2 *before* the app starts.

Each case runs a program whose only effect is to create a marker file; the marker must not
exist afterwards, and stderr must be one line that names the setting and says how to fix it.
Also: ``--version``, ``run --help`` against the settings table, the no-command and
command-not-found statuses, and the documented precedence option > env > pyproject > default.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.otlp import OTLPReceiver
from tests.support.procs import AppProcess, run_script_under_agent, spyglass_argv
from tests.support.waiting import free_port, wait_until

from spyglass import __version__
from spyglass.config import SETTINGS, load_config

MARKER_APP = ["python", "-c", "open('marker', 'w').write('started')"]
CLEAN_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_PROPAGATORS", "OTEL_TRACES_SAMPLER",
             "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "SPYGLASS_METRICS_PORT",
             "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "SPYGLASS_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE",
             "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT",
             "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "SPYGLASS_DISABLED_INTEGRATIONS"}


def spyglass(args: list[str], cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "spyglass", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


BAD = [
    # (id, extra args, env, pyproject text, words the one-line message must contain)
    ("unknown-option", ["--no-such-flag"], {}, None, ["--no-such-flag", "spyglass run --help"]),
    ("env-url", [], {"OTEL_EXPORTER_OTLP_ENDPOINT": "not a url"}, None,
     ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://"]),
    ("option-url", ["--otlp-endpoint", "ftp://x"], {}, None, ["--otlp-endpoint", "http://"]),
    ("ratio-too-big", [], {"OTEL_TRACES_SAMPLER_ARG": "1.5"}, None,
     ["OTEL_TRACES_SAMPLER_ARG", "between 0 and 1"]),
    ("ratio-not-number", [], {"OTEL_TRACES_SAMPLER_ARG": "abc"}, None,
     ["OTEL_TRACES_SAMPLER_ARG", "between 0 and 1"]),
    ("sampler-name", [], {"OTEL_TRACES_SAMPLER": "sometimes"}, None,
     ["OTEL_TRACES_SAMPLER", "parentbased_traceidratio"]),
    ("propagator-name", [], {"OTEL_PROPAGATORS": "tracecontext,nonsense"}, None,
     ["OTEL_PROPAGATORS", "nonsense", "tracecontext"]),
    ("pyproject-value", [], {}, '[tool.spyglass]\nsampler_arg = 7\n',
     ["pyproject.toml", "sampler_arg", "between 0 and 1"]),
    ("pyproject-key", [], {}, '[tool.spyglass]\nsample_rate = 0.5\n',
     ["pyproject.toml", "sample_rate", "known keys"]),
    ("pyproject-syntax", [], {}, '[tool.spyglass\n', ["pyproject.toml", "TOML"]),
    ("batch-not-positive", [], {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "0"}, None,
     ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "positive whole number"]),
    ("batch-over-queue", [], {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "9000"}, None,
     ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE=9000", "the default --max-queue-size=8192",
      "raise the queue size (--max-queue-size"]),
    ("batch-over-queue-options", ["--export-batch-size", "64", "--max-queue-size", "32"], {},
     None, ["--export-batch-size=64 is larger than --max-queue-size=32"]),
    ("batch-over-sdk-queue", [],
     {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"}, None,
     ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE=200 is larger than OTEL_BSP_MAX_QUEUE_SIZE=100"]),
    ("batch-over-pyproject-queue", ["--export-batch-size", "64"], {},
     '[tool.spyglass]\nmax_queue_size = 10\n',
     ["--export-batch-size=64 is larger than pyproject.toml [tool.spyglass] max_queue_size=10"]),
    ("sdk-export-timeout-invalid", [], {"OTEL_BSP_EXPORT_TIMEOUT": "soon"}, None,
     ["OTEL_BSP_EXPORT_TIMEOUT='soon'", "positive number of milliseconds"]),
    ("export-timeout-nan", [], {"SPYGLASS_EXPORT_TIMEOUT": "nan"}, None,
     ["SPYGLASS_EXPORT_TIMEOUT='nan'", "positive number of seconds", "--export-timeout"]),
    ("sdk-export-timeout-infinite", [], {"OTEL_BSP_EXPORT_TIMEOUT": "inf"}, None,
     ["OTEL_BSP_EXPORT_TIMEOUT='inf'", "positive number of milliseconds"]),
    ("otel-queue-invalid", [], {"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, None,
     ["OTEL_BSP_MAX_QUEUE_SIZE", "positive whole number"]),
    ("delay-not-a-number", [], {"OTEL_BSP_SCHEDULE_DELAY": "soon"}, None,
     ["OTEL_BSP_SCHEDULE_DELAY", "positive whole number"]),
    ("port-in-use", ["--metrics-port", "{busy}"], {}, None,
     ["{busy}", "--metrics-port", "SPYGLASS_METRICS_PORT"]),
]


@pytest.mark.parametrize(("args", "env", "pyproject", "words"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_config_exits_2_before_the_app(tmp_path: Path, busy_port: int, args: list[str],
                                           env: dict[str, str], pyproject: str | None,
                                           words: list[str]) -> None:
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    args = [a.format(busy=busy_port) for a in args]
    result = spyglass(["run", *args, "--", *MARKER_APP], tmp_path, env)
    assert result.returncode == 2, result
    assert not (tmp_path / "marker").exists(), "the app started despite the bad config"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spyglass"), lines
    for word in words:
        assert word.format(busy=busy_port) in lines[0], (word, lines[0])
    assert result.stdout == ""


def test_good_config_runs_the_app(tmp_path: Path) -> None:
    """The control for the cases above: the same command with valid settings starts the app."""
    (tmp_path / "pyproject.toml").write_text('[tool.spyglass]\nsampler_arg = 0.5\n')
    result = spyglass(["run", "--metrics-port", str(free_port()), "--", *MARKER_APP], tmp_path,
                      {"OTEL_TRACES_SAMPLER_ARG": "0.25", "SPYGLASS_LOGS": "false",
                       "SPYGLASS_TRACES": "false"})
    assert result.returncode == 0, result
    assert (tmp_path / "marker").read_text() == "started"


def test_version(tmp_path: Path) -> None:
    result = spyglass(["--version"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"spyglass {__version__}"


def test_run_help_lists_every_setting_with_its_variable(tmp_path: Path) -> None:
    result = spyglass(["run", "--help"], tmp_path)
    assert result.returncode == 0, result
    text = " ".join(result.stdout.split())  # undo argparse's line wrapping
    options = re.findall(r"^  (--[a-z][a-z-]*)", result.stdout, re.M)
    for setting in SETTINGS:
        assert setting.cli_flag in options, f"{setting.cli_flag} missing from run --help"
        assert f"env {setting.env}" in text, f"{setting.env} missing from run --help"
    # Every option but --exec (how the command starts, not how the agent behaves) is a
    # setting with a variable.
    documented = {o for o in options if o not in ("--help", "--exec")}
    assert documented == {s.cli_flag for s in SETTINGS}, documented ^ {s.cli_flag for s in
                                                                           SETTINGS}
    assert "--exec" in options


def test_no_command_exits_2(tmp_path: Path) -> None:
    for args in (["run"], ["run", "--"], ["run", "--console", "--"]):
        result = spyglass(args, tmp_path)
        assert result.returncode == 2, (args, result)
        assert "CMD" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_missing_command_exits_127(tmp_path: Path) -> None:
    result = spyglass(["run", "--", "no-such-program-spyglass"], tmp_path)
    assert result.returncode == 127, result
    assert result.stderr == "spyglass: error: no-such-program-spyglass: command not found\n"


def test_precedence_option_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.spyglass]\nservice_name = "from-file"\nenvironment = "file-env"\n'
        'metrics_port = 9999\nsampler_arg = 0.5\n')
    env = {"OTEL_SERVICE_NAME": "from-env", "SPYGLASS_ENVIRONMENT": "env-env"}
    config = load_config({"service_name": "from-option"}, environ=env, cwd=tmp_path)
    assert config.service_name == "from-option"  # option beats env and file
    assert config.environment == "env-env"  # env beats file
    assert config.metrics_port == 9999 and config.sampler_arg == 0.5  # file beats default
    assert config.loki_url == "http://localhost:3100"  # default
    sub = tmp_path / "pkg" / "sub"
    sub.mkdir(parents=True)
    assert load_config(environ={}, cwd=sub).service_name == "from-file"  # nearest pyproject
    assert load_config(environ={}, cwd=Path("/")).metrics_port == 9464


SPAN_SCRIPT = ("from opentelemetry import trace\n"
               "trace.get_tracer('precedence').start_span('work').end()\n")


@pytest.mark.parametrize(("option", "env", "expected"), [
    ("from-option", "from-env", "from-option"),
    (None, "from-env", "from-env"),
    (None, None, "from-file"),
])
def test_precedence_end_to_end(tmp_path: Path, option: str | None, env: str | None,
                               expected: str) -> None:
    """The service name on exported spans follows option > env > pyproject."""
    (tmp_path / "pyproject.toml").write_text('[tool.spyglass]\nservice_name = "from-file"\n')
    (tmp_path / "work.py").write_text(SPAN_SCRIPT)
    with OTLPReceiver() as otlp:
        argv = spyglass_argv("python", "work.py", service_name=option,
                             metrics_port=free_port())
        proc = AppProcess(argv, cwd=tmp_path, env={
            "OTEL_SERVICE_NAME": env, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None, "SPYGLASS_LOGS": "false",
            "OTEL_RESOURCE_ATTRIBUTES": None})
        with proc:
            wait_until(lambda: proc.returncode is not None, timeout=20)
            assert proc.returncode == 0, proc.describe()
        spans = otlp.wait_for_spans(lambda s: s.name == "work", timeout=5)
        assert spans[0].resource["service.name"] == expected


def test_a_queue_set_alone_caps_the_default_batch(tmp_path: Path) -> None:
    """Only ``SPYGLASS_MAX_QUEUE_SIZE`` below the default batch (2048): no error, the batch is
    the whole queue; with neither set, 2048 of a queue of 8192 (benchmarks/RESULTS.md)."""
    small = load_config(environ={"SPYGLASS_MAX_QUEUE_SIZE": "100"}, cwd=tmp_path)
    assert (small.max_queue_size, small.export_batch_size) == (100, 100)
    default = load_config(environ={}, cwd=tmp_path)
    assert (default.max_queue_size, default.export_batch_size) == (8192, 2048)
    both = load_config(environ={"SPYGLASS_MAX_QUEUE_SIZE": "100",
                                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10"}, cwd=tmp_path)
    assert (both.max_queue_size, both.export_batch_size) == (100, 10)


def test_the_sdk_queue_variable_counts_when_ours_is_unset(tmp_path: Path) -> None:
    """``OTEL_BSP_MAX_QUEUE_SIZE`` sets the queue (and so caps the default batch);
    ``SPYGLASS_MAX_QUEUE_SIZE`` wins over it."""
    otel = load_config(environ={"OTEL_BSP_MAX_QUEUE_SIZE": "100"}, cwd=tmp_path)
    assert (otel.max_queue_size, otel.export_batch_size) == (100, 100)
    ours = load_config(environ={"OTEL_BSP_MAX_QUEUE_SIZE": "100",
                                "SPYGLASS_MAX_QUEUE_SIZE": "300"}, cwd=tmp_path)
    assert (ours.max_queue_size, ours.export_batch_size) == (300, 300)
    assert load_config(environ={"OTEL_BSP_SCHEDULE_DELAY": "250"}, cwd=tmp_path).export_delay \
        == 250


def test_the_sdk_export_timeout_is_milliseconds(tmp_path: Path) -> None:
    """``OTEL_BSP_EXPORT_TIMEOUT`` is in milliseconds (the SDK's unit) where
    ``SPYGLASS_EXPORT_TIMEOUT`` is in seconds; ours wins when both are set."""
    assert load_config(environ={}, cwd=tmp_path).export_timeout == 5.0
    sdk = load_config(environ={"OTEL_BSP_EXPORT_TIMEOUT": "2500"}, cwd=tmp_path)
    assert sdk.export_timeout == 2.5
    both = load_config(environ={"OTEL_BSP_EXPORT_TIMEOUT": "2500",
                                "SPYGLASS_EXPORT_TIMEOUT": "7"}, cwd=tmp_path)
    assert both.export_timeout == 7.0
    # And it is the time an upload to a hung backend may take (the poster tracing.py builds).
    import time

    from tests.support.blackhole import BlackHoleServer

    from spyglass.export.http import otlp_poster

    with BlackHoleServer() as hole:
        config = load_config(environ={"OTEL_BSP_EXPORT_TIMEOUT": "300",
                                      "OTEL_EXPORTER_OTLP_ENDPOINT": hole.endpoint},
                             cwd=tmp_path)
        poster = otlp_poster(config.traces_url, config.export_timeout)
        t0 = time.monotonic()
        with pytest.raises(OSError):
            poster.post(b"", "application/x-protobuf")
        assert 0.25 < time.monotonic() - t0 < 2.0


def test_the_sdk_disabled_instrumentations_variable_counts(tmp_path: Path) -> None:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (opentelemetry-instrument's names, fastapi
    for our starlette) when ``SPYGLASS_DISABLED_INTEGRATIONS`` is unset; ours wins."""
    sdk = load_config(environ={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": " FastAPI, requests"},
                      cwd=tmp_path)
    assert not sdk.integration_enabled("starlette")
    assert not sdk.integration_enabled("requests")
    assert sdk.integration_enabled("flask") and sdk.integration_enabled("sqlite3")
    ours = load_config(environ={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests",
                                "SPYGLASS_DISABLED_INTEGRATIONS": "redis"}, cwd=tmp_path)
    assert ours.integration_enabled("requests") and not ours.integration_enabled("redis")


SQLITE_SCRIPT = ("import sqlite3\n"
                 "from opentelemetry import trace\n"
                 "with trace.get_tracer('app').start_as_current_span('work'):\n"
                 "    sqlite3.connect(':memory:').cursor().execute('SELECT 1').fetchall()\n")


@pytest.mark.parametrize("env", [
    {},
    {"SPYGLASS_DISABLED_INTEGRATIONS": "sqlite3"},
    {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "sqlite3"},
    {"SPYGLASS_DISABLED_INTEGRATIONS": "*"},
], ids=["none", "ours", "sdk-variable", "all"])
def test_a_disabled_integration_makes_no_spans(tmp_path: Path, env: dict[str, str]) -> None:
    """The app's own span arrives either way; the sqlite3 query's span only when the sqlite3
    integration is on."""
    (tmp_path / "work.py").write_text(SQLITE_SCRIPT)
    with OTLPReceiver() as otlp:
        argv = spyglass_argv("python", "work.py", metrics_port=free_port())
        proc = AppProcess(argv, cwd=tmp_path, env={
            **dict.fromkeys(CLEAN_ENV), "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, **env})
        with proc:
            wait_until(lambda: proc.returncode is not None, timeout=20)
            assert proc.returncode == 0, proc.describe()
        work = otlp.wait_for_spans(lambda s: s.name == "work", timeout=5)[0]
        db = [s for s in otlp.spans() if s.attributes.get("db.system.name") == "sqlite"]
        if env:
            assert db == [], [s.name for s in db]
        else:
            assert len(db) == 1 and db[0].parent_span_id == work.span_id, db


def test_the_sdk_exporter_variables_switch_a_signal_off(tmp_path: Path) -> None:
    """``OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none`` turns that signal off, as for the SDK;
    another exporter name leaves it on; ``SPYGLASS_*`` wins over them."""
    assert load_config(environ={}, cwd=tmp_path).traces
    for var, name in (("OTEL_TRACES_EXPORTER", "traces"), ("OTEL_METRICS_EXPORTER", "metrics"),
                      ("OTEL_LOGS_EXPORTER", "logs")):
        assert getattr(load_config(environ={var: "none"}, cwd=tmp_path), name) is False, var
        assert getattr(load_config(environ={var: " None "}, cwd=tmp_path), name) is False, var
        assert getattr(load_config(environ={var: "otlp"}, cwd=tmp_path), name) is True, var
        assert getattr(load_config(environ={var: "console,otlp"}, cwd=tmp_path), name) is True
        ours = load_config(environ={var: "none", f"SPYGLASS_{name.upper()}": "true"},
                           cwd=tmp_path)
        assert getattr(ours, name) is True, var


_ONE_SPAN = 'import sqlite3\nsqlite3.connect(":memory:").cursor().execute("SELECT 1")\n'


@pytest.mark.parametrize("exporter", ["otlp", "none"])
def test_traces_exporter_none_sends_no_spans(tmp_path: Path, otlp_receiver: OTLPReceiver,
                                             exporter: str) -> None:
    """End to end: the same script sends its span with ``otlp`` and nothing with ``none``
    (the exit flush has run when the process is gone)."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "SPYGLASS_LOGS": "false",
           "SPYGLASS_METRICS": "false", "OTEL_TRACES_EXPORTER": exporter}
    done = run_script_under_agent(_ONE_SPAN, tmp_path, env, service_name="exporter-app")
    assert done.returncode == 0, done.stderr
    if exporter == "otlp":
        assert otlp_receiver.wait_for_spans(lambda s: s.name == "SELECT", count=1)
    else:
        assert otlp_receiver.spans() == [] and otlp_receiver.requests == 0
