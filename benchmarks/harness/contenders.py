"""How each contender starts each app: command line and environment.

- ``bare``: the project env's gunicorn/uvicorn, no agent.
- ``otel``: ``opentelemetry-instrument`` from ``benchmarks/.venv-otel`` (opentelemetry-distro
  with the flask, fastapi, sqlite3 and logging instrumentations), traces, metrics and logs over
  OTLP/HTTP protobuf, ``always_on`` sampling. The metric export interval is 5 s (default 60 s)
  so that metric exports land inside a 10 s window and can be checked at the sink.
- ``ddtrace``: ``ddtrace-run`` from ``benchmarks/.venv-ddtrace``, every trace kept
  (sampling rule 1.0), log injection and runtime metrics (DogStatsD over UDP) on. ddtrace ships
  no logs itself (the Datadog agent tails files), so its "logs" cost is only the injection.
- ``spyglass``: ``spyglass run`` from the project env, traces always_on to OTLP/HTTP, logs to
  the Loki push API, metrics served on a side port that the runner scrapes every 5 s
  (like a Prometheus scrape), so the scrape's cost lands in the measured process tree.
- ``spyglass-noprof`` (opt-in with ``--contenders``): the same with the slow-request and
  stuck-worker watchdog switched off, to show what idle profiling costs (issue 6).
- ``spyglass-exec`` (opt-in; ``startup.py`` uses it): ``spyglass run --exec``, which execs the
  server in a new interpreter instead of running it in its own (``spyglass.launch``).
- ``spyglass-notraces`` and ``spyglass-nologs`` (opt-in): the same with ``SPYGLASS_TRACES`` or
  ``SPYGLASS_LOGS`` off, to split what one signal's capture, encoding and export threads cost
  the server under load (spans are still made for the RED metrics without traces);
  ``spyglass-metricsonly`` has both off.
- ``spyglass-pure`` (opt-in): ``spyglass run`` with every agent module imported from its
  ``.py`` source instead of the mypyc-compiled extension beside it (what a
  ``SPYGLASS_COMPILE=0`` build runs), in the same interpreter and env, so one run compares the
  compiled and interpreted agent under the same load.
- ``spyglass-off`` (opt-in; ``startup.py`` uses it): ``spyglass run`` with
  ``OTEL_SDK_DISABLED=true``, so only the wrapper's own cost remains.

Framework and server versions are the same in all three environments (setup_venvs.sh pins
them to the project env's), so only the agent differs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
APPS = HERE / "apps"
ROOT = HERE.parent
PROJECT_BIN = Path(sys.executable).parent
OTEL_BIN = HERE / ".venv-otel" / "bin"
DD_BIN = HERE / ".venv-ddtrace" / "bin"

CONTENDERS = ("bare", "otel", "ddtrace", "spyglass")
APPS_ALL = ("flask", "fastapi")
ENDPOINTS = ("/hello", "/work", "/items/42")

_SCRUB_PREFIXES = ("OTEL_", "DD_", "SPYGLASS_")


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    metrics_port: int | None = None
    notes: list[str] = field(default_factory=list)


_PURE_LAUNCH = (f"import runpy, sys; sys.path.insert(0, {str(ROOT)!r}); "
                "import tests.support.pure_python; "
                "runpy.run_module('spyglass', run_name='__main__', alter_sys=True)")


def server_argv(app: str, bindir: Path, port: int, module: str | None = None,
                workers: int = 1, extra: list[str] | None = None) -> list[str]:
    if app == "flask":
        return [str(bindir / "gunicorn"), "-w", str(workers), "-k", "sync",
                "-b", f"127.0.0.1:{port}", "--chdir", str(APPS),
                f"{module or 'flask_app'}:app", *(extra or [])]
    if app == "fastapi":
        return [str(bindir / "uvicorn"), "--host", "127.0.0.1", "--port", str(port),
                "--app-dir", str(APPS), "--no-access-log", "--workers", "1",
                f"{module or 'fastapi_app'}:app", *(extra or [])]
    raise ValueError(app)


def split_variant(variant: str) -> tuple[str, dict[str, str]]:
    """A ``threads.py`` or ``instructions.py --server`` variant: a contender, then
    ``NAME=value`` settings for its environment (``'spyglass SPYGLASS_LOGS=false'``)."""
    contender, *settings = variant.split()
    return contender, dict(s.split("=", 1) for s in settings)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUB_PREFIXES) and k != "PYTHONPATH"}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def launch(contender: str, app: str, port: int, sink_url: str, statsd_port: int,
           metrics_port: int, app_env: dict[str, str], module: str | None = None,
           workers: int = 1, extra: list[str] | None = None) -> Launch:
    if contender == "bare":
        return Launch(server_argv(app, PROJECT_BIN, port, module, workers, extra),
                      base_env(app_env))
    if contender == "otel":
        env = base_env({
            **app_env,
            "OTEL_SERVICE_NAME": f"bench-{app}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        })
        return Launch([str(OTEL_BIN / "opentelemetry-instrument"),
                       *server_argv(app, OTEL_BIN, port, module, workers, extra)], env)
    if contender == "ddtrace":
        env = base_env({
            **app_env,
            "DD_SERVICE": f"bench-{app}",
            "DD_ENV": "bench",
            "DD_TRACE_AGENT_URL": sink_url,
            "DD_TRACE_SAMPLING_RULES": '[{"sample_rate": 1.0}]',
            "DD_LOGS_INJECTION": "true",
            "DD_RUNTIME_METRICS_ENABLED": "true",
            "DD_DOGSTATSD_URL": f"udp://127.0.0.1:{statsd_port}",
        })
        return Launch([str(DD_BIN / "ddtrace-run"),
                       *server_argv(app, DD_BIN, port, module, workers, extra)], env)
    if contender in ("spyglass", "spyglass-noprof", "spyglass-exec", "spyglass-off",
                     "spyglass-notraces", "spyglass-nologs", "spyglass-metricsonly",
                     "spyglass-pure"):
        env = base_env({
            **app_env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
            "OTEL_TRACES_SAMPLER": "always_on",
            "SPYGLASS_LOKI_URL": sink_url,
        })
        if contender == "spyglass-noprof":
            env.update(SPYGLASS_SLOW_REQUEST_SECONDS="0", SPYGLASS_STUCK_WORKER_SECONDS="0")
        if contender == "spyglass-notraces":
            env["SPYGLASS_TRACES"] = "false"
        if contender in ("spyglass-nologs", "spyglass-metricsonly"):
            env["SPYGLASS_LOGS"] = "false"
        if contender == "spyglass-metricsonly":
            env["SPYGLASS_TRACES"] = "false"
        if contender == "spyglass-off":
            env["OTEL_SDK_DISABLED"] = "true"
        how = ["--exec"] if contender == "spyglass-exec" else []
        # spyglass-pure: the same agent with every module imported from its .py source (what a
        # SPYGLASS_COMPILE=0 build runs), in the same interpreter, so one run compares both.
        launcher = ["-c", _PURE_LAUNCH] if contender == "spyglass-pure" else ["-m", "spyglass"]
        argv = [sys.executable, *launcher, "run", *how, "--service-name", f"bench-{app}",
                "--environment", "bench", "--metrics-port", str(metrics_port), "--",
                *server_argv(app, PROJECT_BIN, port, module, workers, extra)]
        return Launch(argv, env, metrics_port=metrics_port)
    raise ValueError(contender)
