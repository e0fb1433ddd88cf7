"""Tests for ``spyglass grafana push`` (agent/spyglass/grafana.py).

Grafana cannot run on this machine, and grafana-client talks through niquests (which
requests-mock does not intercept), so the command is run against :class:`FakeGrafanaAPI`, a
loopback HTTP server that follows the documented Grafana HTTP API calls the command uses.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from spyglass import grafana

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO_ROOT / "dashboards"
TOKEN = "glsa_test-token"


@dataclass
class Request:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class FakeGrafanaAPI:
    """Loopback stand-in for Grafana's HTTP API (not Grafana), 127.0.0.1 on a free port.

    Implements the documented endpoints ``spyglass grafana push`` uses:
    ``GET /api/folders``, ``POST /api/folders`` ({title, uid}),
    ``GET /api/dashboards/uid/:uid`` ({dashboard, meta} or 404) and
    ``POST /api/dashboards/db`` ({dashboard, folderUid, overwrite}); it stores dashboards,
    bumps their ``version`` on every save like Grafana does, and answers 401 unless the
    request carries ``Authorization: Bearer <token>`` (or the basic-auth pair).
    """

    token: str = TOKEN
    basic: tuple[str, str] = ("admin", "admin-password")
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeGrafanaAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    # -- request handling --
    def _authorized(self, header: str) -> bool:
        user_pass = base64.b64encode(":".join(self.basic).encode()).decode()
        return header in (f"Bearer {self.token}", f"Basic {user_pass}")

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        auth = handler.headers.get("Authorization", "")
        path = handler.path.split("?")[0]
        self.requests.append(Request(method, path, auth, body))
        if not self._authorized(auth):
            return self._reply(handler, 401, {"message": "Unauthorized"})
        status, payload = self._route(method, path, body)
        self._reply(handler, status, payload)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/folders"):
            return 200, [
                {"id": f["id"], "uid": u, "title": f["title"]} for u, f in self.folders.items()
            ]
        if (method, path) == ("POST", "/api/folders"):
            uid = body.get("uid") or f"generated{len(self.folders)}"
            if uid in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[uid] = {"id": len(self.folders) + 1, "title": body["title"]}
            return 200, {
                "id": self.folders[uid]["id"],
                "uid": uid,
                "title": body["title"],
                "version": 1,
            }
        if method == "GET" and path.startswith("/api/dashboards/uid/"):
            stored = self.dashboards.get(path.rsplit("/", 1)[1])
            if stored is None:
                return 404, {"message": "Dashboard not found"}
            meta = {"folderUid": stored["folderUid"], "version": stored["dashboard"]["version"]}
            return 200, {"dashboard": stored["dashboard"], "meta": meta}
        if (method, path) == ("POST", "/api/dashboards/db"):
            return self._save(body)
        return 404, {"message": "Not found"}

    def _save(self, body: Any) -> tuple[int, Any]:
        dashboard = body.get("dashboard") or {}
        if not dashboard.get("uid") or not dashboard.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        if body.get("folderUid") not in self.folders:
            return 400, {"message": "folder not found"}
        previous = self.dashboards.get(dashboard["uid"])
        if previous is not None and not body.get("overwrite"):
            return 412, {"status": "version-mismatch", "message": "version-mismatch"}
        version = previous["dashboard"]["version"] + 1 if previous else 1
        internal_id = previous["dashboard"]["id"] if previous else len(self.dashboards) + 1
        stored = dict(dashboard, id=internal_id, version=version)
        self.dashboards[dashboard["uid"]] = {"dashboard": stored, "folderUid": body["folderUid"]}
        uid = dashboard["uid"]
        return 200, {"id": internal_id, "uid": uid, "status": "success", "version": version,
                     "url": f"/d/{uid}/x", "slug": "x"}  # fmt: skip

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafanaAPI]:
    with FakeGrafanaAPI() as server:
        yield server


def local_dashboards() -> dict[str, dict[str, Any]]:
    models = [json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))]
    assert len(models) == 6
    return {m["uid"]: m for m in models}


def run_cli(argv: list[str]) -> int:
    """Parse like ``spyglass`` will (``add_parser`` on its sub-parsers) and dispatch."""
    parser = argparse.ArgumentParser(prog="spyglass")
    grafana.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def push_args(url: str, token: str = TOKEN) -> list[str]:
    return [
        "grafana",
        "push",
        "--url",
        url,
        "--token",
        token,
        "--dashboards-dir",
        str(DASHBOARDS_DIR),
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_first_push_creates_folder_and_dashboards(fake_grafana: FakeGrafanaAPI, capsys) -> None:
    assert run_cli(push_args(fake_grafana.url)) == 0

    assert [r.body for r in fake_grafana.calls("POST", "/api/folders")] == [
        {"title": "Spyglass", "uid": "spyglass"}
    ]
    posts = fake_grafana.calls("POST", "/api/dashboards/db")
    assert len(posts) == 6
    for post in posts:
        assert post.body["folderUid"] == "spyglass" and post.body["overwrite"] is True
    assert all(r.authorization == f"Bearer {TOKEN}" for r in fake_grafana.requests)
    local = local_dashboards()
    assert fake_grafana.dashboards.keys() == local.keys()
    for uid, stored in fake_grafana.dashboards.items():
        content = {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")}
        assert content == local[uid]
    out = capsys.readouterr().out
    assert "spyglass-overview: created (version 1)" in out
    assert "6 created, 0 updated, 0 unchanged" in out


def test_second_push_changes_nothing(fake_grafana: FakeGrafanaAPI, capsys) -> None:
    assert run_cli(push_args(fake_grafana.url)) == 0
    first_requests = len(fake_grafana.requests)
    capsys.readouterr()

    assert run_cli(push_args(fake_grafana.url)) == 0

    second = fake_grafana.requests[first_requests:]
    assert [r for r in second if r.method == "POST"] == []
    assert {d["dashboard"]["version"] for d in fake_grafana.dashboards.values()} == {1}
    out = capsys.readouterr().out
    assert out.count(": unchanged (version 1)") == 6
    assert "0 created, 0 updated, 6 unchanged" in out


def test_a_changed_dashboard_is_updated(
    fake_grafana: FakeGrafanaAPI, tmp_path: Path, capsys
) -> None:
    for path in DASHBOARDS_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    assert grafana.push(fake_grafana.url, TOKEN, tmp_path, "Spyglass") == 0
    edited = tmp_path / "spyglass-runtime.json"
    model = json.loads(edited.read_text())
    model["title"] += " (edited)"
    edited.write_text(json.dumps(model))
    capsys.readouterr()

    assert grafana.push(fake_grafana.url, TOKEN, tmp_path, "Spyglass") == 0

    posts = fake_grafana.calls("POST", "/api/dashboards/db")
    assert [p.body["dashboard"]["uid"] for p in posts[6:]] == ["spyglass-runtime"]
    assert fake_grafana.dashboards["spyglass-runtime"]["dashboard"]["version"] == 2
    assert "spyglass-runtime: updated (version 2)" in capsys.readouterr().out


def test_url_and_token_come_from_the_environment(
    fake_grafana: FakeGrafanaAPI, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(grafana.ENV_URL, fake_grafana.url)
    monkeypatch.setenv(grafana.ENV_TOKEN, TOKEN)
    assert run_cli(["grafana", "push", "--dashboards-dir", str(DASHBOARDS_DIR)]) == 0
    assert len(fake_grafana.dashboards) == 6


def test_basic_auth_from_the_environment(fake_grafana: FakeGrafanaAPI, monkeypatch) -> None:
    monkeypatch.delenv(grafana.ENV_TOKEN, raising=False)
    monkeypatch.setenv(grafana.ENV_USER, "admin")
    monkeypatch.setenv(grafana.ENV_PASSWORD, "admin-password")
    assert run_cli(["grafana", "push", "--url", fake_grafana.url,
                    "--dashboards-dir", str(DASHBOARDS_DIR)]) == 0  # fmt: skip
    assert fake_grafana.requests[0].authorization.startswith("Basic ")
    assert len(fake_grafana.dashboards) == 6


def test_rejected_token_is_one_clear_line(fake_grafana: FakeGrafanaAPI, capsys) -> None:
    assert run_cli(push_args(fake_grafana.url, token="wrong")) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "HTTP 401" in lines[0] and grafana.ENV_TOKEN in lines[0] and "--token" in lines[0]
    assert "Traceback" not in captured.err
    assert fake_grafana.dashboards == {}


def test_unreachable_grafana_is_one_clear_line(capsys) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert run_cli(push_args(url)) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert f"cannot reach Grafana at {url}" in lines[0] and grafana.ENV_URL in lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token", TOKEN], grafana.ENV_URL),
        (["--url", "http://127.0.0.1:1"], grafana.ENV_TOKEN),
        (["--url", "ftp://example", "--token", TOKEN], "not an http(s) URL"),
        (["--url", "http://127.0.0.1:1", "--token", TOKEN, "--dashboards-dir", "/nonexistent"],
         "--dashboards-dir"),
    ],
)  # fmt: skip
def test_bad_usage_exits_2(argv: list[str], message: str, monkeypatch, capsys) -> None:
    for name in (grafana.ENV_URL, grafana.ENV_TOKEN, grafana.ENV_USER, grafana.ENV_PASSWORD):
        monkeypatch.delenv(name, raising=False)
    if "--dashboards-dir" not in argv:
        argv = [*argv, "--dashboards-dir", str(DASHBOARDS_DIR)]
    assert run_cli(["grafana", "push", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_sub_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["grafana"])
    assert exit_info.value.code == 2


def test_importing_the_module_does_not_import_grafana_client() -> None:
    code = (
        "import sys, spyglass.grafana; "
        "print('grafana_client' in sys.modules, 'niquests' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
