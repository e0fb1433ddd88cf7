"""Service A of the cross-service trace tests: FastAPI under uvicorn, calling service B with httpx.

Plain application code with no Spyglass import: everything the tests assert comes from
``spyglass run``. ``B_URL`` (service B's base URL) comes from the environment.

- ``/chain`` calls B's ``/work`` (which talks to PostgreSQL, Redis and Celery);
- ``/fanout`` makes httpx calls from ``asyncio.gather`` and ``asyncio.create_task``;
- ``/threads`` makes httpx calls from ``ThreadPoolExecutor`` workers;
- ``/leaf`` is the target of B's ``requests`` call (with secrets in its URL and headers).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi import FastAPI, Request

B_URL = os.environ["B_URL"]
app = FastAPI()


@app.get("/chain")
async def chain(request: Request) -> dict[str, object]:
    query = request.url.query
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{B_URL}/work" + (f"?{query}" if query else ""), timeout=20)
    return {"b_status": resp.status_code, "b": resp.json()}


@app.get("/fanout")
async def fanout() -> dict[str, object]:
    async with httpx.AsyncClient() as client:

        async def call(tag: str) -> int:
            resp = await client.get(f"{B_URL}/leaf/{tag}", timeout=10)
            return resp.status_code

        gathered = await asyncio.gather(call("g1"), call("g2"))
        created = await asyncio.create_task(call("t1"))
    return {"statuses": [*gathered, created]}


@app.get("/threads")
def threads() -> dict[str, object]:
    def call(tag: str) -> int:
        return httpx.get(f"{B_URL}/leaf/{tag}", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(call, ["p1", "p2"]))
    return {"statuses": statuses}


@app.get("/leaf")
async def leaf() -> dict[str, str]:
    return {"leaf": "a"}
