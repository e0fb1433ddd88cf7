"""Odd but legal (or merely sloppy) values from servers and apps pass through the server layer.

``spyglass.server`` is compiled (setup.py), and a compiled function checks the types of its
annotated arguments where it is called: outside the ``try`` that turns the agent's own failures
into "no span for this request". So whatever the WSGI server or the app hands over is taken as
``Any`` there; these tests would raise ``TypeError`` into the app if that were ever narrowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from spyglass import server
from spyglass.spans import LightSpan, LightTracerProvider


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LightSpan]]:
    spans: list[LightSpan] = []
    provider = LightTracerProvider(TracerProvider(), spans.append)
    monkeypatch.setattr(server, "_tracer", provider.get_tracer(server.__name__, "1"))
    yield spans


def _call(environ: dict[str, Any], headers: Any, status: Any = "200 OK") -> tuple[list, list]:
    started: list[tuple[Any, Any]] = []

    def app(env: dict, start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b"ok"]

    body = server.wsgi_call(app, environ, lambda s, h, e=None: started.append((s, h)))
    chunks = list(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return started, chunks


def test_headers_as_a_tuple_reach_the_server_unchanged(ended: list[LightSpan]) -> None:
    headers = (("Content-Type", "text/plain"),)
    started, chunks = _call({"REQUEST_METHOD": "GET", "PATH_INFO": "/t"}, headers)
    assert started == [("200 OK", headers)] and chunks == [b"ok"]
    assert len(ended) == 1
    assert ended[0].attributes["http.response.status_code"] == 200


def test_a_status_that_is_not_a_string_is_passed_on_and_not_recorded(
        ended: list[LightSpan]) -> None:
    started, _ = _call({"REQUEST_METHOD": "GET", "PATH_INFO": "/t"}, [], status=None)
    assert started == [(None, [])]
    assert len(ended) == 1 and "http.response.status_code" not in ended[0].attributes


def test_environ_values_of_the_wrong_type_cost_the_span_not_the_request(
        ended: list[LightSpan]) -> None:
    started, chunks = _call({"REQUEST_METHOD": None, "PATH_INFO": b"/raw", "HTTP_HOST": 7},
                            [("X", "y")])
    assert started == [("200 OK", [("X", "y")])] and chunks == [b"ok"]
