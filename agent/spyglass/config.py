"""The one configuration object, and where each of its values comes from.

Every setting is declared once, in :data:`SETTINGS`, with its environment variable, its
command-line flag, its ``[tool.spyglass]`` key, its default and its help text. The CLI builds
its options from that table (so ``spyglass run --help`` lists every option with its variable),
and the agent inside the app builds :class:`Config` from the same table. Precedence is
options > environment > ``pyproject.toml`` > defaults; ``spyglass run`` passes its options to the
app as environment variables, so the app side only ever reads the environment and the file.

A bad value raises :class:`ConfigError`, whose message names the setting the way the user wrote
it (flag, variable or file key) and says how to fix it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SETTINGS", "Config", "ConfigError", "Setting", "check_propagators", "load_config",
           "service_name_configured"]

#: Names of environment variables the agent sets for the processes of one app instance.
ENV_METRICS_OWNER = "SPYGLASS_METRICS_OWNER"
ENV_METRICS_DIR = "SPYGLASS_METRICS_DIR"
ENV_BOOTSTRAPPED = "SPYGLASS_BOOTSTRAP"


class ConfigError(ValueError):
    """A setting has a value the agent cannot use. The message says which and how to fix it."""


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false (1/0, yes/no, on/off)")


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError("expected a port number between 1 and 65535") from None
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number between 1 and 65535")
    return port


def _parse_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host, e.g. http://localhost:4318")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("the URL has a malformed port") from None
    return raw.strip().rstrip("/")


def _parse_ratio(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number between 0 and 1, e.g. 0.25") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number between 0 and 1, e.g. 0.25")
    return value


def _positive_number(raw: str, unit: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # NaN and infinity too: a socket timeout takes neither
        raise ValueError(f"expected a positive number of {unit}")
    return value


def _parse_positive_float(raw: str) -> float:
    return _positive_number(raw, "seconds")


def _parse_ms_as_seconds(raw: str) -> float:
    """The SDK's ``OTEL_BSP_EXPORT_TIMEOUT``: milliseconds, where ours are seconds."""
    return _positive_number(raw, "milliseconds") / 1000


def _parse_non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds, 0 or more (0 turns it off)") from None
    if value < 0:
        raise ValueError("expected a number of seconds, 0 or more (0 turns it off)")
    return value


def _parse_positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a positive whole number") from None
    if value <= 0:
        raise ValueError("expected a positive whole number")
    return value


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _parse_sampler(raw: str) -> str:
    value = raw.strip().lower()
    if value not in _SAMPLERS:
        raise ValueError("expected one of " + ", ".join(_SAMPLERS))
    return value


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip().lower() for item in raw.split(",") if item.strip())


#: OpenTelemetry's instrumentation names where Spyglass's integration is named otherwise
#: (one integration, starlette, serves FastAPI and Starlette apps).
_OTEL_INSTRUMENTATION_NAMES = {"fastapi": "starlette"}


def _parse_otel_instrumentations(raw: str) -> tuple[str, ...]:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``: opentelemetry-instrument's names, which are
    ours but for ``fastapi``; the names it knows and we do not are kept and match nothing."""
    names = _parse_list(raw)
    return names + tuple(_OTEL_INSTRUMENTATION_NAMES[n] for n in names
                         if n in _OTEL_INSTRUMENTATION_NAMES)


def _parse_otel_exporter(raw: str) -> bool:
    """``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``: ``none``
    switches the signal off, as for the SDK; any other exporter name (``otlp``,
    ``prometheus``, ``console``...) leaves it on, sent the one way Spyglass sends it."""
    return {v.strip().lower() for v in raw.split(",") if v.strip()} != {"none"}


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _parse_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in _LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(_LOG_LEVELS))
    return value


def _parse_str(raw: str) -> str:
    return raw.strip()


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configurable value: where it is read from and how it is checked."""

    name: str
    env: str
    help: str
    default: Any
    parse: Callable[[str], Any] = _parse_str
    flag: str | None = None
    metavar: str = "VALUE"
    is_flag: bool = False  # a boolean option that takes no argument on the command line
    #: The OpenTelemetry SDK's variable for the same thing, read when ``env`` is not set.
    otel_env: str | None = None
    #: How ``otel_env``'s value is parsed, where its unit differs from ours.
    otel_parse: Callable[[str], Any] | None = None
    otel_unit: str = ""  # said in ``--help`` next to ``otel_env``: " (ms)"

    def read(self, env: Mapping[str, str]) -> tuple[str | None, str]:
        """(raw value, the variable it came from) from the environment."""
        raw = env.get(self.env)
        if raw is None and self.otel_env is not None and self.otel_env in env:
            return env[self.otel_env], self.otel_env
        return raw, self.env

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("service_name", "OTEL_SERVICE_NAME", "service name on every signal", None,
            metavar="NAME"),
    Setting("service_version", "SPYGLASS_SERVICE_VERSION", "service.version resource attribute",
            None, metavar="VERSION"),
    Setting("environment", "SPYGLASS_ENVIRONMENT",
            "deployment environment (deployment.environment, the Loki 'environment' label)",
            "development", metavar="ENV"),
    Setting("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTLP/HTTP base URL; traces go to <URL>/v1/traces", "http://localhost:4318",
            _parse_url, metavar="URL"),
    Setting("otlp_traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "full OTLP/HTTP URL for traces (overrides --otlp-endpoint)", None, _parse_url,
            metavar="URL"),
    Setting("traces", "SPYGLASS_TRACES", "export traces", True, _parse_bool, metavar="BOOL",
            otel_env="OTEL_TRACES_EXPORTER", otel_parse=_parse_otel_exporter,
            otel_unit=" (none: off)"),
    Setting("sampler", "OTEL_TRACES_SAMPLER", "trace sampler",
            "parentbased_traceidratio", _parse_sampler, metavar="NAME"),
    Setting("sampler_arg", "OTEL_TRACES_SAMPLER_ARG",
            "sampling ratio for the ratio samplers, 0 to 1", 1.0, _parse_ratio,
            flag="--sample-rate", metavar="RATIO"),
    Setting("metrics", "SPYGLASS_METRICS", "serve Prometheus metrics", True, _parse_bool,
            metavar="BOOL",
            otel_env="OTEL_METRICS_EXPORTER", otel_parse=_parse_otel_exporter,
            otel_unit=" (none: off)"),
    Setting("metrics_port", "SPYGLASS_METRICS_PORT",
            "port of the one /metrics endpoint for the whole app", 9464, _parse_port,
            metavar="PORT"),
    Setting("metrics_host", "SPYGLASS_METRICS_HOST",
            "address the /metrics endpoint binds (0.0.0.0 to let a remote Prometheus scrape)",
            "127.0.0.1", metavar="HOST"),
    Setting("cardinality_limit", "SPYGLASS_CARDINALITY_LIMIT",
            "most label sets per metric and process before the overflow series", 2000,
            _parse_positive_int, metavar="N"),
    Setting("logs", "SPYGLASS_LOGS", "ship stdlib logging records to Loki", True, _parse_bool,
            metavar="BOOL",
            otel_env="OTEL_LOGS_EXPORTER", otel_parse=_parse_otel_exporter,
            otel_unit=" (none: off)"),
    Setting("loki_url", "SPYGLASS_LOKI_URL", "Loki base URL; pushes go to <URL>/loki/api/v1/push",
            "http://localhost:3100", _parse_url, metavar="URL"),
    Setting("log_level", "SPYGLASS_LOG_LEVEL", "lowest level of records shipped to Loki", "info",
            _parse_level, metavar="LEVEL"),
    Setting("disabled_integrations", "SPYGLASS_DISABLED_INTEGRATIONS",
            "comma list of integrations to leave alone, or * for all", (), _parse_list,
            metavar="LIST", otel_env="OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
            otel_parse=_parse_otel_instrumentations),
    Setting("console", "SPYGLASS_CONSOLE",
            "print one line per request to stderr (method, route, status, duration, trace id)",
            False, _parse_bool, is_flag=True),
    Setting("export_timeout", "SPYGLASS_EXPORT_TIMEOUT",
            "seconds one export may take before its data is dropped", 5.0, _parse_positive_float,
            metavar="SECONDS", otel_env="OTEL_BSP_EXPORT_TIMEOUT",
            otel_parse=_parse_ms_as_seconds, otel_unit=" (ms)"),
    Setting("max_queue_size", "SPYGLASS_MAX_QUEUE_SIZE",
            "spans or log records held per process while a backend is slow", 8192,
            _parse_positive_int, metavar="N", otel_env="OTEL_BSP_MAX_QUEUE_SIZE"),
    Setting("export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "most spans or log records per upload (at most --max-queue-size)", 2048,
            _parse_positive_int, metavar="N"),
    Setting("export_delay", "OTEL_BSP_SCHEDULE_DELAY",
            "longest wait, in milliseconds, before a partial batch is uploaded", 2000,
            _parse_positive_int, metavar="MS"),
    Setting("sentry_dsn", "SENTRY_DSN",
            "send errors to this Sentry DSN (off when empty: sentry-sdk is not even imported)",
            None, metavar="DSN"),
    Setting("trace_url_template", "SPYGLASS_TRACE_URL_TEMPLATE",
            "link to a trace put on Sentry events; {trace_id} is replaced",
            "http://localhost:16686/trace/{trace_id}", metavar="URL"),
    Setting("slow_request_seconds", "SPYGLASS_SLOW_REQUEST_SECONDS",
            "capture the stack (py-spy dump) of a request running longer than this; 0 = off",
            5.0, _parse_non_negative_float, metavar="SECONDS"),
    Setting("stuck_worker_seconds", "SPYGLASS_STUCK_WORKER_SECONDS",
            "dump every thread's stack when requests run but none finished for this long; "
            "0 = off", 20.0, _parse_non_negative_float, metavar="SECONDS"),
    Setting("celery_queue_poll_seconds", "SPYGLASS_CELERY_QUEUE_POLL_SECONDS",
            "how often a Celery worker reads its queues' depth (celery_queue_length)", 10.0,
            _parse_positive_float, metavar="SECONDS"),
    Setting("debug", "SPYGLASS_DEBUG", "log the agent's own debug messages to stderr", False,
            _parse_bool, is_flag=True),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything the agent needs to know, resolved once per process."""

    service_name: str
    service_version: str | None
    environment: str
    otlp_endpoint: str
    otlp_traces_endpoint: str | None
    traces: bool
    sampler: str
    sampler_arg: float
    metrics: bool
    metrics_port: int
    metrics_host: str
    cardinality_limit: int
    logs: bool
    loki_url: str
    log_level: str
    disabled_integrations: tuple[str, ...]
    console: bool
    export_timeout: float
    max_queue_size: int
    export_batch_size: int
    export_delay: int
    sentry_dsn: str | None
    trace_url_template: str
    slow_request_seconds: float
    stuck_worker_seconds: float
    celery_queue_poll_seconds: float
    debug: bool
    sdk_disabled: bool = False
    resource_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def traces_url(self) -> str:
        return self.otlp_traces_endpoint or self.otlp_endpoint + "/v1/traces"

    @property
    def loki_push_url(self) -> str:
        return self.loki_url + "/loki/api/v1/push"

    def integration_enabled(self, name: str) -> bool:
        disabled = self.disabled_integrations
        return "*" not in disabled and name.lower() not in disabled


def _read_pyproject(start: Path) -> dict[str, Any]:
    """The ``[tool.spyglass]`` table of the nearest ``pyproject.toml`` at or above ``start``."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                import tomllib
            except ImportError:  # Python 3.10
                return {}
            try:
                with candidate.open("rb") as fh:
                    data = tomllib.load(fh)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{candidate}: cannot read [tool.spyglass]: {exc}; "
                                  "fix the TOML syntax") from None
            table = data.get("tool", {}).get("spyglass", {})
            if not isinstance(table, dict):
                raise ConfigError(f"{candidate}: [tool.spyglass] must be a table")
            return table
    return {}


def _parse_resource_attributes(raw: str) -> dict[str, str]:
    from urllib.parse import unquote

    attrs: dict[str, str] = {}
    for item in raw.split(","):
        if "=" not in item:
            continue
        key, _, value = item.partition("=")
        if key.strip():
            attrs[key.strip()] = unquote(value.strip())
    return attrs


def default_service_name(argv: list[str] | None = None) -> str:
    """A service name users would guess: the program being run, as OTel agents do."""
    args = list(sys.argv if argv is None else argv)
    name = Path(args[0]).name if args and args[0] else ""
    if name.endswith(".py"):
        name = name[:-3]
    if name in ("", "-c", "python", "python3") or name.startswith("python3."):
        return "unknown_service:python"
    return name


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Resolve every setting: ``overrides`` (already parsed) > environment > file > default."""
    env = os.environ if environ is None else environ
    overrides = overrides or {}
    table = _read_pyproject(cwd or Path.cwd())
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"pyproject.toml [tool.spyglass]: unknown key {unknown[0]!r}; "
            f"known keys are {', '.join(sorted(_BY_NAME))}"
        )
    values: dict[str, Any] = {}
    #: Where each value that is not a default came from, as an error message names it.
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.name in overrides and overrides[setting.name] is not None:
            values[setting.name] = overrides[setting.name]
            sources[setting.name] = setting.cli_flag
            continue
        raw, where = setting.read(env)
        if raw is None and setting.name in table:
            raw, where = str(table[setting.name]), f"pyproject.toml [tool.spyglass] {setting.name}"
            if isinstance(table[setting.name], bool):
                raw = "true" if table[setting.name] else "false"
            elif isinstance(table[setting.name], list):
                raw = ",".join(str(v) for v in table[setting.name])
        if raw is None or (raw == "" and not isinstance(setting.default, bool)):
            values[setting.name] = setting.default
            continue
        parse = setting.parse
        if where == setting.otel_env and setting.otel_parse is not None:
            parse = setting.otel_parse
        try:
            values[setting.name] = parse(raw)
            sources[setting.name] = where
        except ValueError as exc:
            raise ConfigError(
                f"{where}={raw!r} is invalid: {exc} "
                f"(flag {setting.cli_flag}; default {setting.default!r})"
            ) from None

    resource = _parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if not values["service_name"]:
        values["service_name"] = resource.get("service.name") or default_service_name()
    if not values["service_version"]:
        values["service_version"] = resource.get("service.version")
    if "deployment.environment" in resource and setting_unset(env, table, overrides,
                                                               "environment"):
        values["environment"] = resource["deployment.environment"]
    # Fewer, larger uploads than the SDK's 512 (benchmarks/RESULTS.md, session 12): each
    # upload costs the request thread a fixed amount, whatever its size. A queue set alone
    # below the default batch caps the batch; a batch set above the queue is an error.
    if values["export_batch_size"] > values["max_queue_size"]:
        if "export_batch_size" not in sources:  # nobody set it: the default gives way
            values["export_batch_size"] = values["max_queue_size"]
        else:
            def said(name: str) -> str:
                where = sources.get(name) or f"the default {_BY_NAME[name].cli_flag}"
                return f"{where}={values[name]}"

            raise ConfigError(
                f"{said('export_batch_size')} is larger than {said('max_queue_size')}: a "
                "batch is taken from the queue, so lower the batch size (--export-batch-size, "
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise the queue size (--max-queue-size, "
                "SPYGLASS_MAX_QUEUE_SIZE or OTEL_BSP_MAX_QUEUE_SIZE)")
    try:
        sdk_disabled = _parse_bool(env.get("OTEL_SDK_DISABLED", "false"))
    except ValueError as exc:
        raise ConfigError(f"OTEL_SDK_DISABLED={env.get('OTEL_SDK_DISABLED')!r} is invalid: "
                          f"{exc}") from None
    return Config(**values, sdk_disabled=sdk_disabled, resource_attributes=resource)


def check_propagators(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` when ``OTEL_PROPAGATORS`` names a propagator not installed.

    The OTel API reads the variable when ``opentelemetry.propagate`` is imported and raises on
    an unknown name, which used to switch the whole agent off inside the app; ``spyglass run``
    checks it up front instead (an entry point scan, so not on every process start).
    """
    env = os.environ if environ is None else environ
    raw = env.get("OTEL_PROPAGATORS")
    if not raw:
        return
    from importlib.metadata import entry_points

    known = {ep.name for ep in entry_points(group="opentelemetry_propagator")}
    for name in (n.strip() for n in raw.split(",")):
        if name and name != "none" and name not in known:
            raise ConfigError(f"OTEL_PROPAGATORS={raw!r} is invalid: unknown propagator "
                              f"{name!r}; installed ones are {', '.join(sorted(known))}")


def service_name_configured(overrides: Mapping[str, Any], config: Config,
                            cwd: Path | None = None,
                            environ: Mapping[str, str] | None = None) -> bool:
    """True when the user named the service (option, variable, pyproject or resource attrs),
    so ``spyglass run`` must not replace it with a name guessed from the command."""
    env = os.environ if environ is None else environ
    if overrides.get("service_name") or env.get("OTEL_SERVICE_NAME"):
        return True
    if "service.name" in config.resource_attributes:
        return True
    return bool(_read_pyproject(cwd or Path.cwd()).get("service_name"))


def setting_unset(env: Mapping[str, str], table: Mapping[str, Any],
                  overrides: Mapping[str, Any], name: str) -> bool:
    """True when nobody set ``name``: not by option, variable or file."""
    setting = _BY_NAME[name]
    return (overrides.get(name) is None and setting.read(env)[0] is None
            and name not in table)


def to_environ(values: Mapping[str, Any]) -> dict[str, str]:
    """Render parsed option values as the environment variables the app side reads."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        setting = _BY_NAME[name]
        if isinstance(value, bool):
            out[setting.env] = "true" if value else "false"
        elif isinstance(value, tuple):
            out[setting.env] = ",".join(value)
        else:
            out[setting.env] = str(value)
    return out


def env_var_pattern() -> re.Pattern[str]:
    """Matches every variable the agent reads; used to tell users which ones are set."""
    names = "|".join(re.escape(s.env) for s in SETTINGS)
    return re.compile(rf"^(?:{names}|OTEL_[A-Z_]+)$")
