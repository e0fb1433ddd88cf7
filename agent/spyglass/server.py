"""The server span and RED metrics of one HTTP request, shared by the WSGI and ASGI paths.

One request gets exactly one server span and one observation, however many layers (gunicorn,
uvicorn, the framework) try to instrument it: the outermost layer creates a
:class:`RequestState` in a context variable and the inner ones only contribute the route
template. The route comes from the framework (Flask url_rule, Django resolver match, Starlette
route) and is normalised to ``/items/{id}``; a request no route matched (404s, raw WSGI/ASGI
apps) gets ``unmatched``, so raw paths never become label values.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from spyglass import forksafe
from spyglass import metrics as _metrics
from spyglass._log import get_logger
from spyglass.scrub import scrub_query
from spyglass.spans import LightSpan, LightTracer, attach_span, context_fields
from spyglass.spans import detach as detach_context

__all__ = ["UNMATCHED", "RequestState", "current", "set_route", "template"]

UNMATCHED: Final = "unmatched"
_KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
                                   "OPTIONS", "TRACE", "PATCH", "QUERY"})
_MAX_ATTR: Final = 1024
_current: Final[contextvars.ContextVar[RequestState | None]] = contextvars.ContextVar(
    "spyglass_request", default=None)
_after_request: Final[list[Callable[[], None]]] = []
_SERVER: Final = SpanKind.SERVER
# Final names are C statics in this compiled module; module-level names, a dict lookup each
# (a module bound to a name is one either way).
_perf_counter: Final = time.perf_counter
_next: Final = next  # a builtin is looked up in the builtins module on every call


class _Setup:
    """What startup configured, read on every request. Attributes of a compiled class are
    read natively; module-level names that startup reassigns would be a dict lookup each
    (about 130 instructions), and a request read a dozen of them."""

    def __init__(self) -> None:
        self.tracer: LightTracer | None = None
        self.console: Callable[[RequestState], None] | None = None
        #: spyglass.profiling.watchdog.Watchdog: start(state) / stop(state)
        self.request_watch: Any = None
        #: The watchdog's thread keeps the in-flight gauge.
        self.active_by_watch = False
        #: (the propagator, its header names, its environ keys): see _propagation_fields.
        self.fields_of: tuple[object, frozenset[bytes] | None, frozenset[str] | None] = (
            None, None, None)


_setup: Final = _Setup()


def configure(console: bool) -> None:
    from spyglass import tracing

    _setup.tracer = tracing.light_tracer()
    if console:
        from spyglass.console import print_line

        _setup.console = print_line


_exception_hooks: Final[list[Callable[[BaseException, trace.Span], None]]] = []


def set_request_watch(watch: Any) -> None:
    """The slow-request watchdog; its start/stop cost one dict insert/delete per request.

    It also knows the requests in flight, and its thread writes the in-flight gauge at every
    check, so a request does not write it on the way in and out (two metric writes, each
    under the store's lock): the gauge is then at most a check interval (1 s) old, like any
    periodically exported gauge.
    """
    _setup.request_watch = watch
    report = getattr(watch, "report_active", None)
    if report is not None:
        report(_set_active)
    _setup.active_by_watch = report is not None


def _set_active(count: int) -> None:
    inst = _metrics._instruments
    if inst is not None:
        inst.http_server_active.labels().set(count)


def add_exception_hook(hook: Callable[[BaseException, trace.Span], None]) -> None:
    """Called with a request's unhandled exception and its span, before the span ends."""
    _exception_hooks.append(hook)


def add_after_request(hook: Callable[[], None]) -> None:
    """Cheap hooks run after each request (e.g. flushing GC stats the GC callback buffered)."""
    _after_request.append(hook)


class RequestState:
    __slots__ = ("done", "method", "path", "route", "route_reader", "route_source", "span",
                 "start", "status", "token")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.route: str | None = None
        #: Where a framework leaves the matched route, read once when the request ends:
        #: ``route_reader(route_source)`` (a plain function and the framework's object, set
        #: per request without allocating a bound callable).
        self.route_reader: Callable[[Any], str | None] | None = None
        self.route_source: Any = None
        self.status = 0
        #: A light span (spans.py): its methods are called natively from this compiled module.
        self.span: LightSpan | None = None
        self.start = _perf_counter()
        self.token: object = None
        self.done = False


    def resolved_route(self) -> str | None:
        """The route template, reading it from the framework if it left it for later."""
        reader = self.route_reader
        if self.route is None and reader is not None:
            late = reader(self.route_source)
            self.route_reader = self.route_source = None
            if late:
                self.route = _template(late)
        return self.route


def current() -> RequestState | None:
    return _current.get()


_PARAM: Final = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@functools.lru_cache(maxsize=4096)
def template(route: str) -> str:
    """``items/<int:id>/`` (Django, Flask) becomes ``/items/{id}/`` (cached: routes are few)."""
    route = _PARAM.sub(r"{\1}", route)
    if route.startswith("^"):
        route = route[1:]
    route = route.rstrip("$") if route.endswith("$") else route
    return route if route.startswith("/") else "/" + route


#: ``template`` as a C static (the lru_cache wrapper is a module-level object: naming it
#: would look it up in the module's dict on every call).
_template: Final = template


def set_route(route: Any) -> None:
    state = _current.get()
    if state is not None and route and isinstance(route, str):
        state.route = _template(route)


class _EnvironGetter(Getter[dict]):
    def get(self, carrier: dict, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: dict) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


class _HeadersGetter(Getter[list]):
    def get(self, carrier: list, key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k.lower() == wanted]
        return found or None

    def keys(self, carrier: list) -> list[str]:
        return [k.decode("latin-1").lower() for k, _ in carrier]


_ENVIRON_GETTER: Final = _EnvironGetter()
_HEADERS_GETTER: Final = _HeadersGetter()
_EMPTY: Final = otel_context.Context()
# Propagators whose ``fields`` name every header their ``extract`` reads; with only these
# configured, a request that carries none of those headers skips ``extract`` altogether.
_KNOWN_PROPAGATORS: Final = frozenset({
    "TraceContextTextMapPropagator", "W3CBaggagePropagator", "B3MultiFormat", "B3SingleFormat",
    "B3Format"})


def _propagation_fields() -> tuple[frozenset[bytes] | None, frozenset[str] | None]:
    """(header names, WSGI environ keys) the global propagator reads, or (None, None) when
    it is one whose headers we cannot know (then every request runs ``extract``)."""
    # What propagate.get_global_textmap() returns (its module global), read without an
    # interpreted call per request; through the function where that global is not there.
    textmap = (getattr(propagate, "_HTTP_TEXT_FORMAT", None)
               or propagate.get_global_textmap())
    fields_of = _setup.fields_of
    if fields_of[0] is textmap:
        return fields_of[1], fields_of[2]
    headers: frozenset[bytes] | None = None
    environ: frozenset[str] | None = None
    try:
        inner = getattr(textmap, "_propagators", None)
        parts = list(inner) if inner is not None else [textmap]
        if all(type(p).__name__ in _KNOWN_PROPAGATORS for p in parts):
            names = {f.lower() for f in textmap.fields}
            headers = frozenset(n.encode("latin-1") for n in names)
            environ = frozenset("HTTP_" + n.upper().replace("-", "_") for n in names)
    except Exception:  # noqa: BLE001 - unknown shape: always extract
        headers = environ = None
    _setup.fields_of = (textmap, headers, environ)
    return headers, environ


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:_MAX_ATTR]


def begin(method: Any, path: Any, query: Any, scheme: Any, host: Any, user_agent: Any,
          client: Any, carrier: Any, getter: Getter) -> RequestState | None:
    """Start the server span; None (and nothing recorded) if the agent itself fails.

    The arguments come from the server's environ or scope: typed ``Any`` because this module
    is compiled (setup.py) and a compiled function checks its argument types at the call,
    outside the ``try`` that keeps a bad value from reaching the app as our exception.
    """
    try:
        if method not in _KNOWN_METHODS:
            method = method.upper()
            if method not in _KNOWN_METHODS:
                method = "_OTHER"
        state = RequestState(method, path)
        tracer = _setup.tracer
        if tracer is not None:
            # carrier None: the caller saw none of the propagator's headers.
            parent = propagate.extract(carrier, getter=getter) if carrier is not None \
                else _EMPTY
            attributes = {"http.request.method": method,
                          "url.path": path if len(path) <= _MAX_ATTR else path[:_MAX_ATTR],
                          "url.scheme": scheme}
            if query:
                attributes["url.query"] = _clip(scrub_query(query))
            if host:
                attributes["server.address"] = _clip(host.rsplit(":", 1)[0] if "]" not in host
                                                      else host)
            if user_agent:
                attributes["user_agent.original"] = _clip(user_agent)
            if client:
                attributes["client.address"] = _clip(client)
            span = tracer.start_span(method, parent, _SERVER, attributes)
            state.span = span
            state.token = attach_span(span, parent)
        watch = _setup.request_watch
        if watch is not None:
            watch.start(state)
        if not _setup.active_by_watch:
            inst = _metrics._instruments
            if inst is not None:
                inst.http_server_active.labels().inc()
        return state
    except Exception:  # noqa: BLE001
        get_logger().debug("begin request failed", exc_info=True)
        return None


def detach(state: RequestState) -> None:
    """Leave the request's context (called where ``begin`` ran, before the body streams)."""
    token = state.token
    if token is not None:
        state.token = None
        try:
            detach_context(token)
        except Exception:  # noqa: BLE001
            pass


def finish(state: RequestState, exc: BaseException | None = None) -> None:
    """End the span and record the observation, exactly once per request."""
    if state.done:
        return
    state.done = True
    try:
        watch = _setup.request_watch
        if watch is not None:
            watch.stop(state)
        duration = _perf_counter() - state.start
        status = state.status or (500 if exc is not None else 0)
        route = state.resolved_route() or UNMATCHED
        if status == 404:
            route = UNMATCHED
        span = state.span
        trace_id = span_id = 0
        if span is not None:
            span.update_name(f"{state.method} {route}" if route != UNMATCHED else state.method)
            if route != UNMATCHED and status:
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
            elif status:
                span.set_attribute("http.response.status_code", status)
            if exc is not None and not isinstance(exc, GeneratorExit):
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:256]))
                for hook in _exception_hooks:
                    hook(exc, span)
            elif status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            fields = context_fields(span.context)
            if fields[3] & 1:  # sampled
                trace_id, span_id = fields[0], fields[1]
            span.end()
        inst = _metrics._instruments
        if inst is not None:
            if not _setup.active_by_watch:
                inst.http_server_active.labels().dec()
            inst.http_server_duration.labels(state.method, route, str(status)).observe(
                duration, trace_id, span_id)
        for after in _after_request:
            after()
        console = _setup.console
        if console is not None:
            console(state)
    except Exception:  # noqa: BLE001
        get_logger().debug("finish request failed", exc_info=True)


# --------------------------------------------------------------------------- WSGI


class _ClosingIterable:
    """Passes the body through untouched and ends the request when the server closes it.

    An iterator object rather than a generator: one ``__next__`` per chunk instead of a
    generator frame made per response and resumed per chunk (mypyc's generator machinery
    was ~5k instructions a request on Flask ``/work``).
    """

    __slots__ = ("_iterable", "_iterator", "_state")

    def __init__(self, iterable: Iterable[bytes], state: RequestState) -> None:
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._state = state

    def __iter__(self) -> Iterator[bytes]:
        if self._iterator is None:
            try:
                self._iterator = iter(self._iterable)
            except BaseException as exc:
                finish(self._state, exc)
                raise
        return self

    def __next__(self) -> Any:
        # -> Any: a compiled ``-> bytes`` would type-check every chunk, and a chunk the
        # app got wrong must reach the server as the app made it, not as our TypeError.
        if self._iterator is None:
            self.__iter__()
        iterator: Any = self._iterator
        try:
            return _next(iterator)
        except StopIteration:
            raise
        except BaseException as exc:
            finish(self._state, exc)
            raise

    def close(self) -> None:
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            finish(self._state)


class _StartResponse:
    """The app's ``start_response``: notes the status, then calls the server's.

    An object rather than a closure: one allocation per request instead of a closure's two
    (its environment and the function object).
    """

    __slots__ = ("_start_response", "_state")

    def __init__(self, state: RequestState, start_response: Callable[..., Any]) -> None:
        self._state = state
        self._start_response = start_response

    def __call__(self, status: Any, headers: Any, exc_info: Any = None) -> Any:
        self._state.status = _status_code(status)
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)


# gunicorn and werkzeug hand ``start_response`` the same few status lines again and again.
_STATUS_CODES: Final[dict[str, int]] = {}


def _status_code(status: Any) -> int:
    code = _STATUS_CODES.get(status) if type(status) is str else None
    if code is not None:
        return code
    try:
        code = int(status[:3])
    except (TypeError, ValueError):
        return 0
    if type(status) is str and len(_STATUS_CODES) < 256:
        _STATUS_CODES[status] = code
    return code


def _any_key(environ: dict, keys: frozenset[str]) -> bool:
    """Whether ``environ`` has one of ``keys`` (a propagator's few headers). Not
    ``keys.isdisjoint(environ)``: that walks every key of the environ."""
    return any(key in environ for key in keys)  # mypyc compiles this to a plain loop


def wsgi_call(app: Callable[..., Any], environ: dict, start_response: Callable[..., Any]) -> Any:
    """Run one WSGI request through ``app`` with a server span, unless one is active."""
    if _current.get() is not None:
        return app(environ, start_response)
    keys = _propagation_fields()[1]
    carrier = environ if keys is None or _any_key(environ, keys) else None
    state = begin(
        environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""), environ.get("wsgi.url_scheme", "http"),
        environ.get("HTTP_HOST", ""), environ.get("HTTP_USER_AGENT", ""),
        environ.get("REMOTE_ADDR", ""), carrier, _ENVIRON_GETTER)
    if state is None:
        return app(environ, start_response)
    var_token = _current.set(state)
    try:
        result = app(environ, _StartResponse(state, start_response))
    except BaseException as exc:
        finish(state, exc)
        raise
    finally:
        detach(state)
        _current.reset(var_token)
    return _ClosingIterable(result, state)


class WSGIMiddleware:
    """Wraps any WSGI callable; used by the server-level hooks (gunicorn, werkzeug, wsgiref)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.__wrapped__ = app

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Any:
        return wsgi_call(self.app, environ, start_response)


# --------------------------------------------------------------------------- ASGI


def _route_from_scope(scope: dict) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return path if isinstance(path, str) else None


async def asgi_call(app: Callable[..., Any], scope: dict, receive: Any, send: Any) -> None:
    """Run one ASGI HTTP request through ``app`` with a server span, unless one is active."""
    if scope.get("type") != "http" or _current.get() is not None:
        await app(scope, receive, send)
        return
    headers = scope.get("headers") or []
    host = ua = ""
    fields = _propagation_fields()[0]
    propagated = fields is None
    for key, value in headers:
        if key == b"host":
            host = value.decode("latin-1")
        elif key == b"user-agent":
            ua = value.decode("latin-1")
        elif not propagated and key.lower() in fields:  # type: ignore[operator]
            propagated = True
    client = scope.get("client")
    state = begin(scope.get("method", "GET"), scope.get("path", ""),
                  (scope.get("query_string") or b"").decode("latin-1"),
                  scope.get("scheme", "http"), host, ua, client[0] if client else "",
                  headers if propagated else None, _HEADERS_GETTER)
    if state is None:
        await app(scope, receive, send)
        return
    var_token = _current.set(state)
    if not _lag_started:
        _start_loop_lag()

    def _send(message: Any) -> Any:
        # Returns the server's own awaitable instead of awaiting it in a coroutine of ours:
        # no coroutine object and await level per message (two or more per request).
        if message.get("type") == "http.response.start":
            state.status = int(message.get("status", 0))
        return send(message)

    try:
        await app(scope, receive, _send)
    except BaseException as exc:
        if state.route is None:
            state.route = _template_or_none(_route_from_scope(scope))
        finish(state, exc)
        raise
    else:
        if state.route is None:
            state.route = _template_or_none(_route_from_scope(scope))
        finish(state)
    finally:
        detach(state)
        _current.reset(var_token)


def _template_or_none(route: str | None) -> str | None:
    return _template(route) if route else None


class ASGIMiddleware:
    """Wraps any ASGI callable; used by the server-level hook (uvicorn)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.__wrapped__ = app

    def __call__(self, scope: dict, receive: Any, send: Any) -> Coroutine[Any, Any, None]:
        # A plain method returning asgi_call's coroutine, not an ``async def`` awaiting it:
        # one coroutine object and one await level fewer per request, and every suspension
        # of the app resumes through one level fewer. uvicorn chose the ASGI interface from
        # the app it loaded before this wrapper was put around it (integrations/uvicorn.py).
        return asgi_call(self.app, scope, receive, send)


_lag_loops: Final[set[int]] = set()
_lag_started = False  # this process's loop has its timer (reset after fork)


def _start_loop_lag() -> None:
    """Measure the lag of the process's event loop: one timer every 0.5 s on the first loop
    that serves a request (ASGI servers run one per process). Called per request only until
    then: the ``import`` and loop lookup here cost ~1 µs, every request."""
    global _lag_started
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if id(loop) in _lag_loops:
        return
    _lag_loops.add(id(loop))
    _lag_started = True
    inst = _metrics.get()
    if inst is None:
        return
    gauge = inst.loop_lag.labels()

    async def _measure() -> None:
        interval = 0.5
        while True:
            before = loop.time()
            await asyncio.sleep(interval)
            try:
                gauge.set(max(0.0, loop.time() - before - interval))
            except Exception:  # noqa: BLE001
                return

    task = loop.create_task(_measure())
    _lag_tasks.append(task)


_lag_tasks: Final[list[Any]] = []


def _reset_after_fork() -> None:
    global _lag_started
    _lag_started = False
    _lag_loops.clear()
    _lag_tasks.clear()


forksafe.register_after_in_child(_reset_after_fork)
