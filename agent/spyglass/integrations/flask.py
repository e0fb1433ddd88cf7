"""Flask: the request gets its span at ``Flask.__call__`` and its route from ``url_rule``.

The route is read in the ``request_started`` signal, after Flask matched the URL and before
any view or error handler runs, so 404s and errors still get the right route (or
``unmatched``). We do not use opentelemetry-instrumentation-flask: it replaces the ``Flask``
class at import, which misses apps created before it, and it costs a second WSGI layer per
request on top of the server's.
"""

from __future__ import annotations

from typing import Any

from spyglass.config import Config
from spyglass.server import set_route, wsgi_call

NAME = "flask"
MODULES = ("flask",)


def setup_once(config: Config) -> None:
    import flask

    original = flask.Flask.__call__

    def __call__(self: Any, environ: dict, start_response: Any) -> Any:
        return wsgi_call(lambda e, s: original(self, e, s), environ, start_response)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    flask.Flask.__call__ = __call__  # type: ignore[method-assign]

    def on_started(sender: Any, **_: Any) -> None:
        try:
            rule = flask.request.url_rule
            if rule is not None:
                set_route(rule.rule)
        except Exception:  # noqa: BLE001
            pass

    flask.request_started.connect(on_started, weak=False)
