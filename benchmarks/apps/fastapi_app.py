"""FastAPI benchmark app (served by uvicorn with one worker).

Handlers are ``async def`` so the request runs on the event loop: the SQLite query on a
1,000-row table takes microseconds, and it keeps the threadpool hop (whose cost differs
between agents' context propagation) out of the comparison.
"""

from __future__ import annotations

from common import work
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/hello", response_class=PlainTextResponse)
async def hello() -> str:
    return "hello"


@app.get("/work")
async def work_view() -> dict[str, object]:
    return work()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}
