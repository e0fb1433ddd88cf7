"""A plain ASGI callable (no framework): `uvicorn asgi_app:app`."""

import logging

from opentelemetry import trace

log = logging.getLogger("apps.items")
tracer = trace.get_tracer("apps")


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.startswith("/items/"):
        item_id = path.rsplit("/", 1)[-1]
        with tracer.start_as_current_span("load-item"):
            log.warning("item %s loaded", item_id)
        body = f"item {item_id}".encode()
    else:
        body = b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-app", b"asgi")]})
    await send({"type": "http.response.body", "body": body})
