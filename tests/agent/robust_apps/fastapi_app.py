"""A small FastAPI app for the robustness tests, run under uvicorn by ``spyglass run``.

No Spyglass import: everything the tests observe comes from the wrapper.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

log = logging.getLogger("robust.fastapi")
log.setLevel(logging.INFO)

app = FastAPI()


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/log/{tag}")
async def emit_log(tag: str) -> dict[str, str]:
    log.warning("fastapi log %s", tag)
    return {"logged": tag}
