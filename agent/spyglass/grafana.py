"""``spyglass grafana push``: upload the stack's dashboards into a running Grafana.

Why a command and not only provisioning files: a Grafana the user already runs (Grafana Cloud,
a shared company instance) cannot mount our provisioning directory, but it has an HTTP API and
a service account token. The command is idempotent: it compares each remote dashboard with the
local JSON first and posts only what differs, so running it in a deploy script changes nothing
(not even Grafana's version counter) when the dashboards did not change.

Why ``grafana_client`` is imported inside :func:`push`: this package is loaded into every
instrumented app process, and the CLI helper must not add an HTTP client (niquests) to their
import time. Errors end as one line naming the setting to fix and exit code 1; bad usage exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

__all__ = ["ENV_PASSWORD", "ENV_TOKEN", "ENV_URL", "ENV_USER", "add_parser", "push"]

ENV_URL = "GRAFANA_URL"
ENV_TOKEN = "GRAFANA_TOKEN"
ENV_USER = "GRAFANA_USER"
ENV_PASSWORD = "GRAFANA_PASSWORD"

DEFAULT_FOLDER = "Spyglass"
DEFAULT_DASHBOARDS_DIR = Path("dashboards")
DEFAULT_TIMEOUT = 10.0
PROG = "spyglass grafana push"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Keys Grafana sets on a stored dashboard; they never come from our JSON.
_SERVER_KEYS = ("id", "version")


class UsageError(Exception):
    """The command was called wrongly (exit 2)."""


class PushError(Exception):
    """Grafana could not be reached or refused the push (exit 1); the message is one line."""


@dataclass(frozen=True)
class Result:
    uid: str
    action: str  # created | updated | unchanged
    version: int | None


# --- argparse wiring ----------------------------------------------------------------------------
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``grafana`` (with sub-command ``push``) to a CLI's sub-parsers.

    ``args.func(args)`` runs the chosen command and returns its exit code.
    """
    grafana = subparsers.add_parser(
        "grafana", help="work with a Grafana instance", description="Work with a Grafana instance."
    )
    commands = grafana.add_subparsers(dest="grafana_command", metavar="COMMAND", required=True)
    push_parser = commands.add_parser(
        "push",
        help="upload the Spyglass dashboards into a Grafana folder",
        description=(
            "Upload every dashboards/*.json into a Grafana folder (created if missing), "
            "overwriting older versions; dashboards that already match are left alone."
        ),
    )
    push_parser.add_argument(
        "--url", help=f"Grafana base URL, e.g. http://localhost:3000 (default: ${ENV_URL})"
    )
    push_parser.add_argument(
        "--token",
        help=f"service account token with the Editor role (default: ${ENV_TOKEN}); "
        f"or set ${ENV_USER} and ${ENV_PASSWORD} for basic auth",
    )
    push_parser.add_argument(
        "--folder", default=DEFAULT_FOLDER, help="folder title (default: %(default)s)"
    )
    push_parser.add_argument(
        "--dashboards-dir",
        type=Path,
        default=DEFAULT_DASHBOARDS_DIR,
        help="directory holding the dashboard JSON files (default: ./%(default)s)",
    )
    push_parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for each Grafana request (default: %(default)s)",
    )
    push_parser.set_defaults(func=run_push)
    return grafana


def run_push(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """The ``push`` sub-command: flags first, then the environment."""
    env = os.environ if environ is None else environ
    return push(
        args.url or env.get(ENV_URL, ""),
        args.token or env.get(ENV_TOKEN, ""),
        args.dashboards_dir,
        args.folder,
        user=env.get(ENV_USER) or None,
        password=env.get(ENV_PASSWORD) or None,
        timeout=args.timeout,
    )


# --- the command --------------------------------------------------------------------------------
def push(
    url: str,
    token: str | None,
    dashboards_dir: Path | str,
    folder: str = DEFAULT_FOLDER,
    *,
    user: str | None = None,
    password: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Upload every ``*.json`` in ``dashboards_dir`` into ``folder``; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        api_url, credential = _settings(url, token, user, password)
        dashboards = _load_dashboards(Path(dashboards_dir))
        results = _push(api_url, credential, dashboards, folder, timeout, out)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except PushError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_FAILED
    counts = {a: sum(r.action == a for r in results) for a in ("created", "updated", "unchanged")}
    print(
        f"{len(results)} dashboards in folder {folder!r} at {api_url}: "
        + ", ".join(f"{n} {a}" for a, n in counts.items()),
        file=out,
    )
    return EXIT_OK


def _settings(
    url: str, token: str | None, user: str | None, password: str | None
) -> tuple[str, str | tuple[str, str]]:
    if not url:
        raise UsageError(
            f"no Grafana URL: pass --url or set {ENV_URL} (e.g. http://localhost:3000)"
        )
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"Grafana URL {url!r} is not an http(s) URL: fix --url or {ENV_URL}")
    # grafana_client appends "api" to the path as given: keep a sub-path's trailing slash.
    if parsed.path and not parsed.path.endswith("/"):
        url = parsed._replace(path=parsed.path + "/").geturl()
    credential: str | tuple[str, str]
    if token:
        credential = token
    elif user and password:
        credential = (user, password)
    elif parsed.username and parsed.password:
        credential = (parsed.username, parsed.password)
    else:
        raise UsageError(
            f"no Grafana credentials: pass --token or set {ENV_TOKEN} "
            f"(or {ENV_USER} and {ENV_PASSWORD})"
        )
    return url, credential


def _load_dashboards(directory: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        raise UsageError(
            f"dashboards directory {str(directory)!r} not found: pass --dashboards-dir"
        )
    dashboards = []
    for path in sorted(directory.glob("*.json")):
        try:
            model = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read dashboard {path}: {exc}") from exc
        if not isinstance(model, dict) or not model.get("uid") or not model.get("title"):
            raise UsageError(f"{path} is not a dashboard with a uid and a title")
        dashboards.append(model)
    if not dashboards:
        raise UsageError(f"no *.json dashboards in {str(directory)!r}: pass --dashboards-dir")
    return dashboards


def _folder_uid(title: str) -> str:
    """A stable uid for a folder we create, derived from its title (Grafana allows 40 chars)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "spyglass"


def _same(remote: Mapping[str, Any], local: Mapping[str, Any]) -> bool:
    def strip(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in _SERVER_KEYS}

    return strip(remote) == strip(local)


def _push(
    url: str,
    credential: str | tuple[str, str],
    dashboards: list[dict[str, Any]],
    folder: str,
    timeout: float,
    out: TextIO,
) -> list[Result]:
    import niquests
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    api = GrafanaApi.from_url(url, credential=credential, timeout=timeout)
    step = "list folders"
    try:
        folders = api.folder.get_all_folders()
        folder_uid = next((f["uid"] for f in folders if f.get("title") == folder), None)
        if folder_uid is None:
            step = f"create folder {folder!r}"
            folder_uid = api.folder.create_folder(folder, uid=_folder_uid(folder))["uid"]
            print(f"folder {folder!r}: created (uid {folder_uid})", file=out)
        results = []
        for model in dashboards:
            uid = model["uid"]
            step = f"read dashboard {uid}"
            remote = _get_dashboard(api, uid, GrafanaException)
            if (
                remote is not None
                and remote.get("meta", {}).get("folderUid") == folder_uid
                and _same(remote.get("dashboard", {}), model)
            ):
                result = Result(uid, "unchanged", remote["dashboard"].get("version"))
            else:
                step = f"save dashboard {uid}"
                body = {k: v for k, v in model.items() if k not in _SERVER_KEYS}
                saved = api.dashboard.update_dashboard(
                    {
                        "dashboard": body,
                        "folderUid": folder_uid,
                        "overwrite": True,
                        "message": "spyglass grafana push",
                    }
                )
                action = "created" if remote is None else "updated"
                result = Result(uid, action, saved.get("version"))
            print(f"{uid}: {result.action} (version {result.version})", file=out)
            results.append(result)
        return results
    except GrafanaException as exc:
        raise PushError(_explain(exc, url, step)) from None
    except niquests.exceptions.RequestException as exc:
        raise PushError(
            f"cannot reach Grafana at {url} ({type(exc).__name__}): check --url / {ENV_URL} "
            "and that Grafana is running"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PushError(
            f"{url} did not answer like Grafana's HTTP API while trying to {step} "
            f"({type(exc).__name__}): check --url / {ENV_URL}"
        ) from None


def _get_dashboard(api: Any, uid: str, grafana_exception: type[Exception]) -> Any:
    """The stored dashboard with its meta, or None when Grafana has no such uid."""
    try:
        return api.dashboard.get_dashboard(uid)
    except grafana_exception as exc:
        if getattr(exc, "status_code", None) == 404:
            return None
        raise


def _explain(exc: Any, url: str, step: str) -> str:
    status = getattr(exc, "status_code", 0)
    if status == 401:
        return (
            f"Grafana at {url} rejected the credentials (HTTP 401) while trying to {step}: "
            f"set --token / {ENV_TOKEN} to a valid service account token "
            f"(or {ENV_USER} and {ENV_PASSWORD})"
        )
    if status == 403:
        return (
            f"Grafana at {url} refused to {step} (HTTP 403): the account behind --token / "
            f"{ENV_TOKEN} needs the Editor role or write access to the folder"
        )
    if not status:
        return (
            f"cannot reach Grafana at {url} while trying to {step}: check --url / {ENV_URL} "
            "and that Grafana is running"
        )
    message = str(getattr(exc, "message", "") or exc).replace("\n", " ")[:200]
    return f"Grafana at {url} failed to {step}: HTTP {status}: {message}"
