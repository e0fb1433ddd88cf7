"""Flask: the request gets its span at ``Flask.__call__`` and its route from ``url_rule``.

Flask matches the URL when it pushes the request context, so we keep the context that
``Flask.request_context`` creates and read ``request.url_rule`` from it when the request ends:
404s and errors get the right route (or ``unmatched``), and a request costs one extra call
instead of a blinker signal receiver (the ``request_started`` receiver we had cost ~10 µs a
request). We do not use opentelemetry-instrumentation-flask: it replaces the ``Flask`` class at
import, which misses apps created before it, and it costs a second WSGI layer per request on
top of the server's.
"""

from __future__ import annotations

from typing import Any, Final

from spyglass.config import Config
from spyglass.server import current, wsgi_call

NAME = "flask"
MODULES = ("flask",)


def setup_once(config: Config) -> None:
    import flask

    original = flask.Flask.__call__

    def __call__(self: Any, environ: dict, start_response: Any) -> Any:
        if current() is not None:  # the server's hook (gunicorn, werkzeug) observes it
            return original(self, environ, start_response)
        return wsgi_call(lambda e, s: original(self, e, s), environ, start_response)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    flask.Flask.__call__ = __call__  # type: ignore[method-assign]

    original_context = flask.Flask.request_context

    def request_context(self: Any, environ: Any) -> Any:
        ctx = original_context(self, environ)
        state = current()
        if state is not None and state.route is None:
            state.route_reader = _RULE_OF
            state.route_source = ctx
        return ctx

    request_context.__wrapped__ = original_context  # type: ignore[attr-defined]
    flask.Flask.request_context = request_context  # type: ignore[method-assign]


def _rule_of(ctx: Any) -> str | None:
    rule = getattr(ctx.request, "url_rule", None)
    return getattr(rule, "rule", None)


# The function object, as a C static of this compiled module (naming the function from the
# closure above would look it up in the module's dict on every request).
_RULE_OF: Final = _rule_of
