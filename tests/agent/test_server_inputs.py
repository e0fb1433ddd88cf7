"""Odd but legal (or merely sloppy) values from servers and apps pass through the server layer.

``spyglass.server`` is compiled (setup.py), and a compiled function checks the types of its
annotated arguments where it is called: outside the ``try`` that turns the agent's own failures
into "no span for this request". So whatever the WSGI server or the app hands over is taken as
``Any`` there; these tests would raise ``TypeError`` into the app if that were ever narrowed.
"""

from __future__ import annotations

import sys
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
    monkeypatch.setattr(server._setup, "tracer", provider.get_tracer(server.__name__, "1"))
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


class _Body:
    """A WSGI body that yields ``chunks``, then raises ``fail`` if given, and counts close."""

    def __init__(self, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed += 1


def _serve(body: _Body, status: str = "200 OK") -> Any:
    def app(env: dict, start_response: Any) -> _Body:
        start_response(status, [])
        return body

    return server.wsgi_call(app, {"REQUEST_METHOD": "GET", "PATH_INFO": "/b"},
                            lambda s, h, e=None: None)


def test_the_body_passes_through_and_the_span_ends_at_close(ended: list[LightSpan]) -> None:
    body = _Body([b"a", b"", b"bc"])
    wrapped = _serve(body)
    assert list(wrapped) == [b"a", b"", b"bc"]
    assert ended == []  # streamed, not closed yet
    wrapped.close()
    wrapped.close()  # a server that closes twice ends the span once
    assert body.closed == 2
    assert len(ended) == 1 and ended[0].status.is_ok


def test_a_body_that_fails_midway_ends_the_span_with_the_error(
        ended: list[LightSpan]) -> None:
    body = _Body([b"a"], fail=RuntimeError("disk gone"))
    wrapped = _serve(body)
    it = iter(wrapped)
    assert next(it) == b"a"
    with pytest.raises(RuntimeError, match="disk gone"):
        next(it)
    wrapped.close()
    assert body.closed == 1
    assert len(ended) == 1
    assert ended[0].attributes["error.type"] == "RuntimeError"
    assert not ended[0].status.is_ok


def test_a_chunk_that_is_not_bytes_reaches_the_server_as_the_app_made_it(
        ended: list[LightSpan]) -> None:
    """A wrong body is the server's to reject (gunicorn: "... is not a byte"), with its own
    error, as without the agent; the compiled wrapper does not type-check chunks."""
    text, marker = "not bytes", object()
    wrapped = _serve(_Body([text, marker]))  # type: ignore[list-item]
    chunks = list(wrapped)
    assert chunks[0] is text and chunks[1] is marker
    wrapped.close()
    assert len(ended) == 1 and ended[0].status.is_ok


def test_a_body_iterated_without_iter_and_an_empty_body(ended: list[LightSpan]) -> None:
    wrapped = _serve(_Body([b"x"]))
    assert next(wrapped) == b"x"  # __next__ before __iter__
    with pytest.raises(StopIteration):
        next(wrapped)
    empty = _serve(_Body([]))
    assert list(empty) == [] and list(empty) == []
    wrapped.close()
    empty.close()
    assert len(ended) == 2


@pytest.mark.parametrize(("status", "code"), [
    ("200 OK", 200), ("404 NOT FOUND", 404), ("200 OK", 200), ("503", 503),
    ("abc", 0), (b"201 Created", 201)])
def test_status_codes_are_read_from_the_status_line(status: Any, code: int) -> None:
    assert server._status_code(status) == code


def test_start_response_passes_exc_info_and_the_write_callable_through(
        ended: list[LightSpan]) -> None:
    """PEP 3333's error page: the app starts again with ``exc_info``; the server gets it as
    the third argument, the span takes the second status, and ``write`` comes back."""
    calls: list[tuple[Any, ...]] = []

    def write(data: bytes) -> None:
        calls.append(("write", data))

    def server_start_response(*args: Any) -> Any:
        calls.append(args)
        return write

    def app(env: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise ValueError("late failure")
        except ValueError:
            exc_info = sys.exc_info()
            start_response("500 Internal Server Error", [], exc_info)(b"partial")
        return [b"error page"]

    body = server.wsgi_call(app, {"REQUEST_METHOD": "GET", "PATH_INFO": "/t"},
                            server_start_response)
    assert list(body) == [b"error page"]
    body.close()
    assert calls[0] == ("200 OK", [])
    assert calls[1][0] == "500 Internal Server Error" and calls[1][2][0] is ValueError
    assert calls[2] == ("write", b"partial")
    assert len(ended) == 1
    assert ended[0].attributes["http.response.status_code"] == 500
