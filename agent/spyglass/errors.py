"""Errors to Sentry, linked to the OpenTelemetry trace they happened in.

When ``SENTRY_DSN`` (``--sentry-dsn``) is set, unhandled request exceptions, failed Celery tasks
and ``logging`` records at ERROR or above that carry ``exc_info`` become Sentry events. Each
event carries the OTel ``trace_id``/``span_id`` in ``contexts.trace`` (so Sentry shows it as the
event's trace), a ``trace_id`` tag to search by, and a link to the trace in Jaeger built from
``SPYGLASS_TRACE_URL_TEMPLATE``; the Sentry event id goes back on the span as the
``sentry.event_id`` attribute, so each side links to the other. With no DSN this module imports
nothing from ``sentry_sdk`` (it is not even loaded), so apps that do not use Sentry pay nothing.

Why ``default_integrations=False`` and ``auto_enabling_integrations=False``, and explicit
captures from our own hooks instead of Sentry's framework integrations: OpenTelemetry is the one
tracer. Sentry's Flask/Django/Celery/ASGI/stdlib integrations wrap the same entry points a second
time, start their own (unsampled) transactions, and inject ``sentry-trace``/``baggage`` headers
into outgoing HTTP calls and Celery messages even with performance off. We keep only the
integrations that capture without instrumenting: ``DedupeIntegration`` (one event when a request
exception is both raised and logged), ``ExcepthookIntegration`` (a script's uncaught exception)
and ``AtexitIntegration`` (flush at exit). ``traces_sample_rate``/``profiles_sample_rate`` stay
unset, ``instrumenter="otel"`` tells the SDK that spans come from OTel, and ``propagate_traces``
is off. The captures are: the server's exception hook (:func:`capture_exception`, called before
the request span ends), Flask's and Django's ``got_request_exception`` signals (those frameworks
turn an exception into a 500 response before it reaches the server layer), Celery's
``task_failure`` signal, and the shared logging tap (:mod:`spyglass.logs.tap`, which the Loki
shipper uses too) feeding sentry-sdk's own ``EventHandler``.

Privacy: ``send_default_pii`` stays at its default, off (sentry-sdk 2.75 deprecates passing
it in favour of ``data_collection``, which 2.20 lacks; nothing of ours turns it on). Local
variables are not sent (no other signal of ours ships them), and ``before_send`` applies the
scrubbing of :mod:`spyglass.scrub` that spans and logs get: Authorization/Cookie-like headers and
cookies are redacted, password/token-like query parameters and URL credentials are redacted, and
SQL literals are replaced with ``?`` in database error messages and SQL-carrying fields.

Forked workers: sentry-sdk's transport thread already restarts in a new pid, but its HTTP
connection pool is inherited; after a fork the child builds a new client with the same options
(cheap: no thread starts until the first event), so no socket is shared with the parent.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

from spyglass import forksafe
from spyglass._log import get_logger
from spyglass.logs import tap
from spyglass.scrub import REDACTED, SENSITIVE_HEADERS, scrub_query, scrub_sql, scrub_url

__all__ = [
    "DEFAULT_TRACE_URL_TEMPLATE",
    "ENV_DSN",
    "ENV_TRACE_URL_TEMPLATE",
    "SPAN_ATTRIBUTE",
    "before_send",
    "capture_exception",
    "enabled",
    "flush",
    "install",
    "trace_url",
]

ENV_DSN = "SENTRY_DSN"
ENV_TRACE_URL_TEMPLATE = "SPYGLASS_TRACE_URL_TEMPLATE"
DEFAULT_TRACE_URL_TEMPLATE = "http://localhost:16686/trace/{trace_id}"
#: The span attribute holding the id of the Sentry event raised in that span.
SPAN_ATTRIBUTE = "sentry.event_id"

# Loggers whose records never become events: the agent's own, the SDKs' own.
_IGNORED_LOGGERS = ("spyglass", "sentry_sdk", "opentelemetry", "urllib3.connectionpool")
# Exceptions raised by these packages carry SQL in their message (with the literal values).
_DB_MODULES = ("psycopg", "psycopg2", "sqlite3", "sqlalchemy", "django.db", "pymysql",
               "MySQLdb", "asyncpg", "redis")
_SQL_KEYS = frozenset({"sql", "statement", "query", "db.statement", "db.query.text"})
_URL_KEYS = frozenset({"url", "http.url", "url.full", "referer", "referrer"})
_SENSITIVE_KEY = re.compile(
    r"(?:pass(?:word|wd)?|pwd|token|secret|api[_-]?key|access[_-]?key|auth|signature|"
    r"session|credential|cookie|csrf)", re.IGNORECASE)

_lock = threading.Lock()
_options: dict[str, Any] | None = None
_template = DEFAULT_TRACE_URL_TEMPLATE
_target_span: contextvars.ContextVar[trace.Span | None] = contextvars.ContextVar(
    "spyglass_sentry_span", default=None)


def enabled() -> bool:
    """True once :func:`install` started Sentry in this process."""
    return _options is not None


def _setting(config: object | None, name: str, env: str, default: str | None) -> str | None:
    value = getattr(config, name, None) if config is not None else None
    if value in (None, ""):
        value = os.environ.get(env) or default
    return str(value).strip() if value not in (None, "") else None


def trace_url(trace_id: str, template: str | None = None) -> str:
    """The trace viewer link for ``trace_id`` (``{trace_id}`` in the template is replaced)."""
    return (template or _template).replace("{trace_id}", trace_id)


# --------------------------------------------------------------------------- event shaping


def _span_for_event() -> trace.Span | None:
    span = _target_span.get() or trace.get_current_span()
    return span if span.get_span_context().is_valid else None


def _link_trace(event: dict[str, Any], span: trace.Span) -> None:
    ctx = span.get_span_context()
    trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    contexts = event.setdefault("contexts", {})
    trace_ctx: dict[str, Any] = {"trace_id": trace_id, "span_id": span_id}
    parent = getattr(span, "parent", None)
    if parent is not None and getattr(parent, "is_valid", False):
        trace_ctx["parent_span_id"] = format(parent.span_id, "016x")
    name = getattr(span, "name", None)
    if isinstance(name, str) and name:
        trace_ctx["op"] = name
    contexts["trace"] = trace_ctx
    url = trace_url(trace_id)
    contexts["otel"] = {"trace_id": trace_id, "span_id": span_id, "trace_url": url}
    tags = event.setdefault("tags", {})
    if isinstance(tags, dict):
        tags["trace_id"] = trace_id


def _add_request(event: dict[str, Any]) -> None:
    """Method, path and route of the request in flight (our own, already scrubbed data)."""
    try:
        from spyglass import server

        state = server.current()
    except Exception:  # noqa: BLE001
        return
    if state is None:
        return
    request = event.setdefault("request", {})
    if isinstance(request, dict):
        request.setdefault("method", state.method)
        request.setdefault("url", state.path)
    route = state.resolved_route()
    if route:
        tags = event.setdefault("tags", {})
        if isinstance(tags, dict):
            tags.setdefault("http.route", route)


def _scrub_value(key: str, value: Any) -> Any:
    lowered = key.lower()
    if isinstance(value, str):
        if lowered in SENSITIVE_HEADERS or _SENSITIVE_KEY.search(lowered):
            return REDACTED
        if lowered in _SQL_KEYS:
            return scrub_sql(value)
        if lowered in _URL_KEYS:
            return scrub_url(value)
        return value
    if isinstance(value, Mapping):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(key, v) for v in value]
    return value


def _scrub_request(request: dict[str, Any]) -> None:
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        request["headers"] = {k: (REDACTED if str(k).lower() in SENSITIVE_HEADERS else v)
                              for k, v in headers.items()}
    if request.get("cookies"):
        request["cookies"] = REDACTED
    if isinstance(request.get("query_string"), str):
        request["query_string"] = scrub_query(request["query_string"])
    if isinstance(request.get("url"), str):
        url = request["url"]
        request["url"] = scrub_url(url) if "://" in url else url.split("?", 1)[0]
    for key in ("data", "env"):
        if key in request:
            request[key] = _scrub_value(key, request[key])


def scrub_event(event: dict[str, Any]) -> dict[str, Any]:
    """Apply the scrubbing every other signal gets (headers, query, URLs, SQL literals)."""
    request = event.get("request")
    if isinstance(request, dict):
        _scrub_request(request)
    for exc in (event.get("exception") or {}).get("values") or []:
        module = str(exc.get("module") or "")
        if module.startswith(_DB_MODULES) and isinstance(exc.get("value"), str):
            exc["value"] = scrub_sql(exc["value"])
        for frame in (exc.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for key in ("extra", "contexts"):
        if isinstance(event.get(key), Mapping):
            event[key] = {k: (v if k == "trace" else _scrub_value(str(k), v))
                          for k, v in event[key].items()}
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    for crumb in values or []:
        if not isinstance(crumb, dict):
            continue
        if str(crumb.get("category", "")).startswith(("query", "db")) and isinstance(
                crumb.get("message"), str):
            crumb["message"] = scrub_sql(crumb["message"])
        if isinstance(crumb.get("data"), Mapping):
            crumb["data"] = _scrub_value("data", crumb["data"])
    logentry = event.get("logentry")
    if isinstance(logentry, dict) and str(event.get("logger", "")).startswith(_DB_MODULES):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = scrub_sql(logentry[key])
    return event


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Link the event to its trace, scrub it, and record its id on the span."""
    try:
        span = _span_for_event()
        if span is not None:
            _link_trace(event, span)
        _add_request(event)
        scrub_event(event)
        event_id = event.get("event_id")
        if span is not None and event_id and span.is_recording():
            span.set_attribute(SPAN_ATTRIBUTE, str(event_id))
    except Exception:  # noqa: BLE001 - a bug here must not lose the event
        get_logger().debug("before_send failed", exc_info=True)
    return event


# --------------------------------------------------------------------------- capturing


def capture_exception(exc: BaseException, span: trace.Span | None = None,
                      mechanism: str = "spyglass") -> str | None:
    """Send ``exc`` as an unhandled error of ``span`` (default: the current span).

    The signature matches ``server.add_exception_hook``. Returns the event id (None when
    Sentry is off or the event was dropped, e.g. as a duplicate).
    """
    if _options is None:
        return None
    try:
        import sentry_sdk
        from sentry_sdk.utils import event_from_exception

        token = _target_span.set(span)
        try:
            client = sentry_sdk.get_client()
            event, hint = event_from_exception(
                exc, client_options=client.options,
                mechanism={"type": mechanism, "handled": False})
            return sentry_sdk.capture_event(event, hint=hint)
        finally:
            _target_span.reset(token)
    except Exception:  # noqa: BLE001
        get_logger().debug("Sentry capture failed", exc_info=True)
        return None


def _hook_logging() -> None:
    """ERROR records with exc_info become events (the app's own handlers run unchanged)."""
    from sentry_sdk.integrations.logging import EventHandler

    handler = EventHandler(level=logging.ERROR)

    def consume(record: logging.LogRecord) -> None:
        if (not record.exc_info or record.exc_info[0] is None or _options is None
                or record.name.startswith(_IGNORED_LOGGERS)):
            return
        handler.emit(record)

    tap.add_consumer(logging.ERROR, consume)


def _hook_flask(module: Any) -> None:
    def on_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
        if exception is not None:
            capture_exception(exception, mechanism="flask")

    module.got_request_exception.connect(on_exception, weak=False)


def _hook_django(module: Any) -> None:
    import sys

    def on_exception(sender: Any, request: Any = None, **_: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            capture_exception(exc, mechanism="django")

    module.got_request_exception.connect(on_exception, weak=False,
                                         dispatch_uid="spyglass.errors")


def _hook_celery(module: Any) -> None:
    from celery import signals

    def on_failure(sender: Any = None, exception: BaseException | None = None,
                   **_: Any) -> None:
        if exception is None:
            return
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("celery.task_name", str(getattr(sender, "name", "unknown")))
            capture_exception(exception, mechanism="celery")

    signals.task_failure.connect(on_failure, weak=False)


def _register_import_hooks() -> None:
    import wrapt

    hooks: tuple[tuple[str, Callable[[Any], None]], ...] = (
        ("flask", _hook_flask), ("django.core.signals", _hook_django), ("celery", _hook_celery))
    for name, hook in hooks:
        def guarded(module: Any, hook: Callable[[Any], None] = hook, name: str = name) -> None:
            try:
                hook(module)
            except Exception:  # noqa: BLE001
                get_logger().warning("Sentry capture for %s failed to start", name,
                                     exc_info=True)

        wrapt.register_post_import_hook(guarded, name)


def _init(options: Mapping[str, Any]) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.integrations.excepthook import ExcepthookIntegration

    def quiet_atexit(pending: int, timeout: float) -> None:
        """The app's stderr is not ours to write a banner on; flushing is enough."""

    sentry_sdk.init(
        **options,
        integrations=[DedupeIntegration(), ExcepthookIntegration(),
                      AtexitIntegration(callback=quiet_atexit)],
        before_send=before_send,  # type: ignore[arg-type]  # Event is a TypedDict of dicts
    )


def _reinit_after_fork() -> None:
    if _options is not None:
        _init(_options)


def install(config: object | None = None) -> bool:
    """Start sending errors to Sentry if a DSN is configured; True if started. Idempotent.

    ``config`` is the agent's Config (its ``sentry_dsn`` and ``trace_url_template`` fields when
    present); the environment variables ``SENTRY_DSN`` and ``SPYGLASS_TRACE_URL_TEMPLATE`` are
    read otherwise. Without a DSN this returns False without importing sentry-sdk.
    """
    global _options, _template
    dsn = _setting(config, "sentry_dsn", ENV_DSN, None)
    if not dsn:
        return False
    with _lock:
        if _options is not None:
            return True
        _template = (_setting(config, "trace_url_template", ENV_TRACE_URL_TEMPLATE,
                              DEFAULT_TRACE_URL_TEMPLATE) or DEFAULT_TRACE_URL_TEMPLATE)
        options: dict[str, Any] = {
            "dsn": dsn,
            "environment": getattr(config, "environment", None) or None,
            "release": getattr(config, "service_version", None) or None,
            "include_local_variables": False,
            "traces_sample_rate": None,
            "profiles_sample_rate": None,
            "instrumenter": "otel",
            "propagate_traces": False,
            "default_integrations": False,
            "auto_enabling_integrations": False,
            "auto_session_tracking": False,
            "enable_backpressure_handling": False,
        }
        try:
            _init(options)
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed DSN
            get_logger().error("SENTRY_DSN is not usable (%s); errors are not sent to Sentry",
                               exc)
            return False
        _options = options
        import sentry_sdk

        service = getattr(config, "service_name", None) or os.environ.get("OTEL_SERVICE_NAME")
        if service:
            sentry_sdk.get_global_scope().set_tag("service", service)
    _hook_logging()
    _register_import_hooks()
    forksafe.register_after_in_child(_reinit_after_fork)
    try:
        from spyglass import server

        add_hook = getattr(server, "add_exception_hook", None)
        if add_hook is not None:
            add_hook(capture_exception)
    except Exception:  # noqa: BLE001
        get_logger().debug("server exception hook not installed", exc_info=True)
    return True


def flush(timeout: float = 2.0) -> None:
    """Send queued events now (a no-op when Sentry is off)."""
    if _options is None:
        return
    try:
        import sentry_sdk

        sentry_sdk.flush(timeout=timeout)
    except Exception:  # noqa: BLE001
        pass
