"""A plain WSGI callable (no framework); `python wsgi_app.py` serves it with wsgiref."""

import logging
import os
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry import trace

log = logging.getLogger("apps.items")
tracer = trace.get_tracer("apps")


def app(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ.get("PATH_INFO", "")
    if path.startswith("/items/"):
        item_id = path.rsplit("/", 1)[-1]
        with tracer.start_as_current_span("load-item"):
            log.warning("item %s loaded", item_id)
        body = f"item {item_id}".encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "wsgi"),
                              ("Content-Length", str(len(body)))])
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    with make_server("127.0.0.1", int(os.environ["PORT"]), app, handler_class=_Quiet) as srv:
        srv.serve_forever()
