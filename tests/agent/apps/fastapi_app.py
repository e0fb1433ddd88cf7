"""A FastAPI app: `uvicorn fastapi_app:app`, `gunicorn -k uvicorn.workers.UvicornWorker`."""

import logging

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from opentelemetry import trace

app = FastAPI()
log = logging.getLogger("apps.items")
tracer = trace.get_tracer("apps")


@app.get("/items/{item_id}")
async def item(item_id: int) -> PlainTextResponse:
    with tracer.start_as_current_span("load-item"):
        log.warning("item %s loaded", item_id)
    return PlainTextResponse(f"item {item_id}", headers={"X-App": "fastapi"})


@app.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("ok")
