"""Checks on the generated Grafana dashboards (dashboards/*.json) without a Grafana.

Grafana cannot run on this machine, so the dashboards are held to the documented contracts
instead: the JSON is what the code in dashboards/src generates, every dashboard has the
shared variables, every panel has a unit and a description and uses only the stack's fixed
datasource uids, every PromQL expression parses with promtool (the Prometheus parser itself)
and every LogQL expression parses with @grafana/lezer-logql (the grammar Grafana's Loki editor
uses). Each parser check also has a negative test so a check that silently passes everything
cannot go unnoticed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO_ROOT / "dashboards"
JS_DIR = REPO_ROOT / "tests" / "js"
LOGQL_SCRIPT = JS_DIR / "parse_logql.mjs"
DATASOURCE_UIDS = {"prometheus", "loki", "jaeger"}
NPM_INSTALL = "npm ci --prefix tests/js"

# Grafana's built-in interval macros are not PromQL/LogQL; Grafana replaces them with durations
# before sending a query. Dashboard variables ($service...) only ever appear inside label-matcher
# strings, where they are plain text to both parsers, so they are left as they are.
MACROS = re.compile(
    r"\$__(rate_interval|interval|auto|range)\b|\$\{__(rate_interval|interval|auto|range)\}"
)
LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>[a-zA-Z_]\w*)\s*\)\s*$")
QUERY_RESULT = re.compile(r"^\s*query_result\((?P<query>.*)\)\s*$")


@dataclass(frozen=True)
class Expr:
    """One query expression and where it came from (for error messages)."""

    where: str
    expr: str


def substitute_macros(expr: str) -> str:
    return MACROS.sub("5m", expr)


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    dashboards = {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
    assert dashboards, f"no dashboards in {directory}"
    return dashboards


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every non-row panel, including panels nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def datasource_uid(ref: Any) -> str | None:
    if isinstance(ref, dict):
        return ref.get("uid")
    return ref  # legacy: a datasource name or uid as a plain string


def datasource_refs(dashboard: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for var in dashboard.get("templating", {}).get("list", []):
        if "datasource" in var:
            yield f"variable {var['name']}", var["datasource"]
    for panel in panels(dashboard):
        if "datasource" in panel:
            yield f"panel {panel.get('title')!r}", panel["datasource"]
        for target in panel.get("targets", []):
            if "datasource" in target:
                yield (
                    f"panel {panel.get('title')!r} target {target.get('refId')}",
                    target["datasource"],
                )


def expressions(dashboards: dict[str, dict[str, Any]], kind: str) -> list[Expr]:
    """Every query of datasource ``kind`` (prometheus or loki) in panels and variables."""
    found = []
    for name, dashboard in dashboards.items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                ref = target.get("datasource", panel.get("datasource"))
                if datasource_uid(ref) == kind and target.get("expr"):
                    where = f"{name} / {panel.get('title')} / {target.get('refId')}"
                    found.append(Expr(where, target["expr"]))
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") != "query" or datasource_uid(var.get("datasource")) != kind:
                continue
            where = f"{name} / variable {var['name']}"
            query = var.get("query")
            if kind == "prometheus":
                text = query if isinstance(query, str) else (query or {}).get("query", "")
                if match := LABEL_VALUES.match(text):
                    found.append(Expr(where, match["selector"]))
                elif match := QUERY_RESULT.match(text):
                    found.append(Expr(where, match["query"]))
                elif not re.match(r"^\s*(label_values|label_names|metrics)\(", text):
                    found.append(Expr(where, text))
            elif isinstance(query, dict) and query.get("stream"):
                found.append(Expr(where, query["stream"]))
    return found


# --- parsers ---------------------------------------------------------------------------------
def promtool_errors(exprs: list[Expr], tmp_path: Path) -> str:
    """promtool's complaints ("" when all parse); each expression is its own rule group.

    Prometheus 2.42's promtool has no ``promql`` parse command, so every expression becomes a
    recording rule and ``promtool check rules`` parses it; the group name says where it is from.
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: apt-get install prometheus")
    groups = [
        {
            "name": f"{index}: {e.where}",
            "rules": [{"record": "dashboard_check:expr", "expr": substitute_macros(e.expr)}],
        }
        for index, e in enumerate(exprs)
    ]
    rules = tmp_path / "dashboard_exprs.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=10_000))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    if result.returncode == 0:
        return ""
    return (result.stdout + result.stderr).strip() or f"promtool exited {result.returncode}"


def node_modules_ready() -> bool:
    return (JS_DIR / "node_modules" / "@grafana" / "lezer-logql" / "package.json").exists()


def require_logql_parser() -> str:
    """The node binary, or skip/fail: skipping is allowed only outside CI."""
    node = shutil.which("node")
    if node_modules_ready() and node:
        return node
    missing = "node" if node is None else "tests/js/node_modules"
    message = f"LogQL parser unavailable ({missing} missing): run `{NPM_INSTALL}`"
    if os.environ.get("CI", "").lower() == "true" or node_modules_ready():
        pytest.fail(message)
    pytest.skip(message)


def logql_errors(exprs: list[Expr]) -> dict[str, list[dict[str, Any]]]:
    """where -> error nodes found by @grafana/lezer-logql (only entries with errors)."""
    node = require_logql_parser()
    payload = [{"id": e.where, "expr": substitute_macros(e.expr)} for e in exprs]
    result = subprocess.run(
        [node, str(LOGQL_SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=60,
    )
    assert result.returncode in (0, 1), f"parse_logql.mjs failed: {result.stderr}"
    reports = json.loads(result.stdout)
    assert [r["id"] for r in reports] == [e.where for e in exprs]
    return {r["id"]: r["errors"] for r in reports if r["errors"]}


# --- tests -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


def test_committed_json_matches_the_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dashboards.build", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_build_check_detects_a_stale_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "dashboards.build", "--out", str(tmp_path)],
        cwd=REPO_ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    victim = tmp_path / "spyglass-overview.json"
    victim.write_text(victim.read_text().replace('"Request rate"', '"Request rate (edited)"'))
    result = subprocess.run(
        [sys.executable, "-m", "dashboards.build", "--check", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "spyglass-overview.json: differs" in result.stderr


def test_the_six_dashboards_have_stable_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {d["uid"] for d in dashboards.values()} == {
        "spyglass-overview",
        "spyglass-endpoint",
        "spyglass-dependencies",
        "spyglass-runtime",
        "spyglass-logs",
        "spyglass-agent",
    }
    for name, d in dashboards.items():
        assert name == f"{d['uid']}.json"
        assert d["schemaVersion"] == 41, "Grafana 11 schema (grafana-foundation-sdk 11.6)"


def test_every_dashboard_has_service_and_environment_variables(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for name, d in dashboards.items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert {"service", "environment"} <= variables.keys(), name
        for var in ("service", "environment"):
            assert variables[var]["type"] == "query", (name, var)
            assert datasource_uid(variables[var]["datasource"]) in {"prometheus", "loki"}


def test_every_panel_has_unit_and_description(dashboards: dict[str, dict[str, Any]]) -> None:
    problems = []
    for name, d in dashboards.items():
        for panel in panels(d):
            where = f"{name} / {panel.get('title')!r}"
            if not panel.get("description", "").strip():
                problems.append(f"{where}: no description")
            if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
                problems.append(f"{where}: no unit")
            if not panel.get("targets"):
                problems.append(f"{where}: no query")
    assert not problems, "\n".join(problems)


def test_only_the_fixed_datasource_uids_are_used(dashboards: dict[str, dict[str, Any]]) -> None:
    seen = set()
    for name, d in dashboards.items():
        for where, ref in datasource_refs(d):
            uid = datasource_uid(ref)
            assert uid in DATASOURCE_UIDS, f"{name} {where}: datasource {ref!r}"
            seen.add(uid)
    assert {"prometheus", "loki"} <= seen


def test_logs_link_to_traces_and_latency_panels_ask_for_exemplars(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    logs = json.dumps(dashboards["spyglass-logs.json"])
    assert "${__value.raw}" in logs and "%22jaeger%22" in logs
    overview = dashboards["spyglass-overview.json"]
    latency = next(p for p in panels(overview) if p["title"].startswith("Latency"))
    assert latency["targets"] and all(t.get("exemplar") for t in latency["targets"])


def test_expressions_are_collected_from_panels_and_variables(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    prom = expressions(dashboards, "prometheus")
    loki = expressions(dashboards, "loki")
    assert any("variable route" in e.where for e in prom)
    assert any("variable service" in e.where for e in loki)
    assert len(prom) > 40 and len(loki) >= 4


def test_every_promql_expression_parses_with_promtool(
    dashboards: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    assert promtool_errors(expressions(dashboards, "prometheus"), tmp_path) == ""


def test_promtool_check_catches_a_broken_expression(tmp_path: Path) -> None:
    exprs = [
        Expr("good", 'sum by (service) (rate(x_total{service=~"$service"}[$__rate_interval]))'),
        Expr("broken panel", 'sum by (service) (rate(x_total{service=~"$service"}[5m])'),
    ]
    errors = promtool_errors(exprs, tmp_path)
    assert "1: broken panel" in errors and "unclosed left parenthesis" in errors
    assert "0: good" not in errors


def test_every_logql_expression_parses_with_lezer_logql(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    assert logql_errors(expressions(dashboards, "loki")) == {}


def test_logql_check_catches_a_broken_expression() -> None:
    errors = logql_errors(
        [
            Expr("good", 'sum by (level) (count_over_time({service_name="a"} [$__auto]))'),
            Expr("unclosed selector", '{service_name="a", level=~"error|critical"'),
            Expr("bad range", 'count_over_time({service_name="a"} [five minutes])'),
        ]
    )
    assert set(errors) == {"unclosed selector", "bad range"}
