"""The ASGI layers Spyglass adds (uvicorn's wrapper, the FastAPI and Starlette ``__call__``
patches) stay ASGI 3 apps and make exactly one server span per request, with or without an
outer layer.

Those layers are plain functions that return a coroutine rather than ``async def`` wrappers
(one coroutine object and await level fewer per request, benchmarks/RESULTS.md session 14),
so what a server checks about them is checked here: uvicorn picks ASGI 3 only if
``asyncio.iscoroutinefunction(app.__call__)`` holds, and falls back to its ASGI 2 adapter,
which breaks every request, if not. A real app process runs under ``spyglass run``; requests
go through the app's ASGI callable directly (no server layer of ours: the patched
``__call__`` makes the span) and through the app uvicorn loads (our wrapper outermost, the
patches nested inside it: still one span).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.otlp import OTLPReceiver
from tests.support.procs import run_script_under_agent
from tests.support.waiting import free_port

APP = textwrap.dedent('''
    import asyncio

    import uvicorn
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    fast = FastAPI()

    @fast.get("/fast/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    async def hello(request):
        return PlainTextResponse("hi " + request.path_params["name"], status_code=201)

    star = Starlette(routes=[Route("/star/{name}", hello)])

    async def call(app, path):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "method": "GET", "scheme": "http", "path": path,
                   "raw_path": path.encode(), "query_string": b"", "root_path": "",
                   "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000),
                   "server": ("testserver", 80)}, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    for app in (fast, star):
        assert asyncio.iscoroutinefunction(app.__call__), app
        config = uvicorn.Config(app)
        config.load()
        assert config.interface == "asgi3", config.interface
        # Without a layer of ours around it, then as uvicorn serves it (ours outermost).
        for target in (app, config.loaded_app):
            path = "/fast/7" if app is fast else "/star/ann"
            status, body = asyncio.run(call(target, path))
            assert (status, body) == ((200, b'{"id":7}') if app is fast else (201, b"hi ann")), (
                status, body)
    print("ok", flush=True)
''')


def test_layers_stay_asgi3_and_make_one_span(tmp_path: Path,
                                             otlp_receiver: OTLPReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "SPYGLASS_LOGS": "false",
           "SPYGLASS_METRICS_PORT": str(free_port())}
    done = run_script_under_agent(APP, tmp_path, env, service_name="asgi-layers")
    assert done.returncode == 0 and done.stdout == "ok\n", (done.stdout, done.stderr)
    spans = otlp_receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=4)
    assert sorted((s.name, s.attributes["http.route"], s.attributes["http.response.status_code"])
                  for s in spans) == [("GET /fast/{item_id}", "/fast/{item_id}", 200)] * 2 + [
                      ("GET /star/{name}", "/star/{name}", 201)] * 2
    # One span per request: no layer nested in another made a second one.
    assert len({s.trace_id for s in spans}) == 4
    assert all(s.is_root for s in spans)
