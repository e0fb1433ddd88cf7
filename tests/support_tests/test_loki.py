"""The Loki push stand-in accepts the documented JSON shape and nothing else."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from tests.support.loki import LogEntry, LokiReceiver
from tests.support.procs import http_get, http_request

# The example body from the Loki HTTP API docs ("Ingest logs"), plus structured metadata.
VALID: dict[str, Any] = {
    "streams": [
        {
            "stream": {"service_name": "storefront", "level": "info"},
            "values": [
                ["1570818238000000000", "level=info msg=fizzbuzz"],
                [
                    "1570818238000000001",
                    "level=info msg=with-metadata",
                    {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"},
                ],
            ],
        }
    ]
}


def push(receiver: LokiReceiver, payload: Any, gzipped: bool = False) -> tuple[int, bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    status, _, answer = http_request(
        "POST", f"{receiver.endpoint}/loki/api/v1/push", body=body, headers=headers
    )
    return status, answer


@pytest.mark.parametrize("gzipped", [False, True])
def test_accepts_documented_payload(loki_receiver: LokiReceiver, gzipped: bool) -> None:
    status, _ = push(loki_receiver, VALID, gzipped=gzipped)
    assert status == 204
    assert loki_receiver.errors == []
    labels = {"service_name": "storefront", "level": "info"}
    assert loki_receiver.entries() == [
        LogEntry(labels, 1570818238000000000, "level=info msg=fizzbuzz", {}),
        LogEntry(
            labels,
            1570818238000000001,
            "level=info msg=with-metadata",
            {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"},
        ),
    ]
    found = loki_receiver.wait_for(lambda e: "trace_id" in e.metadata, timeout=1)
    assert found[0].metadata["span_id"] == "b7ad6b7169203331"


def _with_stream(stream: Any) -> dict[str, Any]:
    return {"streams": [stream]}


def _with_values(*values: Any, labels: Any = None) -> dict[str, Any]:
    return _with_stream({"stream": labels or {"a": "b"}, "values": list(values)})


MALFORMED: dict[str, Any] = {
    "missing streams": {"stream": {"a": "b"}},
    "streams not a list": {"streams": {"stream": {"a": "b"}, "values": []}},
    "numeric timestamp": _with_values([1570818238000000000, "x"]),
    "non-decimal timestamp": _with_values(["2019-10-11T18:23:58Z", "x"]),
    "float timestamp string": _with_values(["1.5e18", "x"]),
    "non-string label value": _with_values(["1", "x"], labels={"level": 3}),
    "bad label name": _with_values(["1", "x"], labels={"service.name": "x"}),
    "label name starting with digit": _with_values(["1", "x"], labels={"1abc": "x"}),
    "no labels": _with_stream({"stream": {}, "values": [["1", "x"]]}),
    "non-string line": _with_values(["1", {"msg": "x"}]),
    "value too long": _with_values(["1", "x", {}, "extra"]),
    "value not a list": _with_values({"ts": "1", "line": "x"}),
    "non-string metadata": _with_values(["1", "x", {"n": 1}]),
    "unknown stream key": _with_stream({"stream": {"a": "b"}, "values": [], "labels": "{a=\"b\"}"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_rejects_malformed_payload(loki_receiver: LokiReceiver, case: str) -> None:
    status, answer = push(loki_receiver, MALFORMED[case])
    assert status == 400, answer
    assert len(loki_receiver.errors) == 1
    assert loki_receiver.errors[0] in answer.decode()
    assert loki_receiver.entries() == []


def test_rejects_bad_json_encoding_and_content_type(loki_receiver: LokiReceiver) -> None:
    assert push(loki_receiver, b"{not json")[0] == 400
    status, _, _ = http_request(
        "POST",
        f"{loki_receiver.endpoint}/loki/api/v1/push",
        body=json.dumps(VALID),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert status == 415
    status, _, _ = http_request(
        "POST",
        f"{loki_receiver.endpoint}/loki/api/v1/push",
        body=b"garbage",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert status == 400
    assert len(loki_receiver.errors) == 3
    assert loki_receiver.pushes == 3


def test_ready_and_clear(loki_receiver: LokiReceiver) -> None:
    status, _, body = http_get(f"{loki_receiver.endpoint}/ready")
    assert (status, body) == (200, b"ready\n")
    push(loki_receiver, VALID)
    loki_receiver.clear()
    assert loki_receiver.entries() == [] and loki_receiver.pushes == 0


def test_fail_status_answers_without_storing(loki_receiver: LokiReceiver) -> None:
    loki_receiver.fail_status = 429
    assert push(loki_receiver, VALID)[0] == 429
    assert loki_receiver.entries() == []
    with pytest.raises(AssertionError, match="expected >= 1 matching log entries"):
        loki_receiver.wait_for(lambda e: True, timeout=0.2)
