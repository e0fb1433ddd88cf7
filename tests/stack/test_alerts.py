"""Alert rules: generated in sync, valid for promtool, unit-tested, shaped like a mixin's.

The rules are generated from alerts/slos.yaml and alerts/config.yaml; these tests hold the
generator to its sources and every alert to the conventions the runbook and Alertmanager
rely on (severity scheme, runbook anchors, a promtool test on both sides of `for`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import ALERTS, REPO_ROOT, load_yaml, require_tool

GENERATED = sorted((ALERTS / "generated").glob("*.yaml"))
UNIT_TESTS = sorted((ALERTS / "tests").glob("*.yaml"))
SEVERITIES = {"critical", "warning"}
CAMEL_CASE = re.compile(r"^[A-Z][a-z0-9]*(?:[A-Z][a-z0-9]*|[A-Z]+(?=[A-Z][a-z]|\d|$))*$")
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def all_alerts() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, r) for p in GENERATED for r in rules_of(p) if "alert" in r]


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub renders them (lower-case, punctuation dropped, - for space)."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_generated_files_exist() -> None:
    names = {p.name for p in GENERATED}
    assert {"slo_rules.yaml", "slo_rules_e2e.yaml"} <= names
    assert len(UNIT_TESTS) >= len(GENERATED)


def test_generator_check_passes_on_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, str(ALERTS / "generate.py"), "--check"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_generator_check_fails_when_sources_change(tmp_path: Path) -> None:
    copy = tmp_path / "alerts"
    shutil.copytree(ALERTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    slos = copy / "slos.yaml"
    slos.write_text(slos.read_text().replace("objective: 0.9995", "objective: 0.999"))
    result = subprocess.run(
        [sys.executable, str(copy / "generate.py"), "--check"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "out of sync: alerts/generated/slo_rules.yaml" in result.stderr
    # Regenerating fixes it.
    subprocess.run([sys.executable, str(copy / "generate.py")], check=True, timeout=60,
                   capture_output=True)
    again = subprocess.run([sys.executable, str(copy / "generate.py"), "--check"],
                           capture_output=True, timeout=60)
    assert again.returncode == 0


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = subprocess.run([require_tool("promtool"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(path: Path) -> None:
    result = subprocess.run([require_tool("promtool"), "test", "rules", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name_alert", all_alerts(), ids=lambda na: f"{na[0]}:{na[1]['alert']}")
def test_alert_shape(name_alert: tuple[str, dict[str, Any]]) -> None:
    _, alert = name_alert
    runbook = (ALERTS / "RUNBOOK.md").read_text()
    assert CAMEL_CASE.match(alert["alert"]), alert["alert"]
    assert re.fullmatch(r"\d+[smhd]", alert["for"]), "every alert needs a `for`"
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    for key in ("summary", "description", "runbook_url", "dashboard_url"):
        assert annotations.get(key), f"{alert['alert']} lacks annotation {key}"
    url, _, anchor = annotations["runbook_url"].partition("#")
    assert url.endswith("/alerts/RUNBOOK.md")
    assert anchor == alert["alert"].lower()
    assert anchor in github_anchors(runbook), f"RUNBOOK.md has no section #{anchor}"


def test_recording_rules_follow_level_metric_operation() -> None:
    records = [r["record"] for p in GENERATED for r in rules_of(p) if "record" in r]
    assert "service:http_server_requests:error_ratio_rate5m" in records
    for record in records:
        assert RECORD_NAME.match(record), record


def test_runbook_has_no_orphan_alert_sections() -> None:
    """Every runbook section named like an alert belongs to an alert that exists."""
    names = {a["alert"].lower() for _, a in all_alerts()}
    anchors = github_anchors((ALERTS / "RUNBOOK.md").read_text())
    camel_sections = {
        a for a in anchors if a not in {"severities", "spyglass-alert-runbook"}
    }
    assert camel_sections == names


def _eval_times(test_file: Path) -> dict[str, dict[str, set[bool]]]:
    """alertname -> {"firing"/"quiet" -> seen} over a promtool unit test file."""
    seen: dict[str, dict[str, set[bool]]] = {}
    for case in load_yaml(test_file)["tests"]:
        for check in case.get("alert_rule_test", []):
            entry = seen.setdefault(check["alertname"], {"firing": set(), "quiet": set()})
            entry["firing" if check.get("exp_alerts") else "quiet"].add(True)
    return seen


def test_every_alert_tested_firing_and_not_firing() -> None:
    """Each alert name has a promtool case where it must not fire and one where it fires."""
    coverage: dict[str, dict[str, bool]] = {}
    for test_file in UNIT_TESTS:
        for name, entry in _eval_times(test_file).items():
            slot = coverage.setdefault(name, {"firing": False, "quiet": False})
            slot["firing"] |= bool(entry["firing"])
            slot["quiet"] |= bool(entry["quiet"])
    for _, alert in all_alerts():
        name = alert["alert"]
        assert coverage.get(name, {}).get("quiet"), f"{name}: no not-firing eval_time"
        assert coverage.get(name, {}).get("firing"), f"{name}: no firing eval_time"


def test_for_window_checked_on_both_sides() -> None:
    """The quiet check of each alert comes before its firing check, within its `for`."""

    def seconds(text: str) -> int:
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))

    for test_file in UNIT_TESTS:
        spec = load_yaml(test_file)
        durations = {
            rule["alert"]: rule["for"]
            for rule_file in spec["rule_files"]
            for rule in rules_of(test_file.parent / rule_file)
            if "alert" in rule
        }
        for case in spec["tests"]:
            checks = case.get("alert_rule_test", [])
            for name in {c["alertname"] for c in checks}:
                quiet = [seconds(c["eval_time"]) for c in checks
                         if c["alertname"] == name and not c.get("exp_alerts")]
                firing = [seconds(c["eval_time"]) for c in checks
                          if c["alertname"] == name and c.get("exp_alerts")]
                if quiet and firing:
                    gap = min(firing) - max(quiet)
                    assert 0 < gap <= seconds(durations[name]), (test_file.name, name)


def test_unit_tests_load_the_generated_files() -> None:
    loaded = set()
    for test_file in UNIT_TESTS:
        for rule_file in load_yaml(test_file)["rule_files"]:
            loaded.add((test_file.parent / rule_file).resolve())
    assert loaded == {p.resolve() for p in GENERATED}


def test_severities_match_alertmanager_inhibition() -> None:
    """The severity values rules use are exactly the ones Alertmanager routes and inhibits."""
    am = yaml.safe_load((REPO_ROOT / "collectors" / "alertmanager.yml").read_text())
    used = {a["labels"]["severity"] for _, a in all_alerts()}
    assert used == SEVERITIES
    inhibit = am["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert "service" in inhibit["equal"]
    routed = {m for r in am["route"]["routes"] for m in r.get("matchers", [])}
    assert {f'severity="{s}"' for s in SEVERITIES} <= routed


def test_test_scaled_rules_mirror_the_page_alert() -> None:
    """The e2e copy has the availability page alert with windows divided by the divisor."""
    slos = load_yaml(ALERTS / "slos.yaml")
    divisor = slos["test_scaled_divisor"]
    real = [r for r in rules_of(ALERTS / "generated" / "slo_rules.yaml")
            if r.get("alert") == "AvailabilityBudgetBurnFast"]
    scaled = [r for r in rules_of(ALERTS / "generated" / "slo_rules_e2e.yaml") if "alert" in r]
    assert {r["alert"] for r in scaled} == {"AvailabilityBudgetBurnFast"}
    assert len(real) == len(scaled) == len(slos["slos"])
    for r, s in zip(real, scaled, strict=True):
        assert s["labels"] == {**r["labels"], "test_scaled": "true"}
        assert re.findall(r"> ([\d.]+)", r["expr"]) == re.findall(r"> ([\d.]+)", s["expr"])
        assert r["expr"].replace("rate1h", "rate1m").replace("rate5m", "rate5s").replace(
            "rate6h", "rate6m").replace("rate30m", "rate30s") == s["expr"]
    assert divisor == 60  # the replacements above encode a divisor of 60


def test_latency_thresholds_are_histogram_buckets() -> None:
    buckets = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
    for service, spec in load_yaml(ALERTS / "slos.yaml")["slos"].items():
        assert 0 < spec["availability"]["objective"] < 1, service
        assert spec["latency"]["threshold_seconds"] in buckets, service


def test_dashboard_links_point_at_existing_dashboards() -> None:
    """dashboard_url annotations name dashboard uids that dashboards/ provisions."""
    dashboards = REPO_ROOT / "dashboards"
    uids = {yaml.safe_load(p.read_text()).get("uid") for p in dashboards.glob("*.json")}
    wanted = set(load_yaml(ALERTS / "config.yaml")["grafana"]["dashboards"].values())
    assert wanted <= uids, f"missing dashboards: {sorted(wanted - uids)}"
