"""collectors/: each backend's config checked by its own tool where one runs here (promtool,
amtool), and against the backend's documented contract where it does not (Loki, Grafana,
Jaeger, OTel Collector cannot run on this machine).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import ALERTS, COLLECTORS, load_yaml, require_tool

ConfigCopy = Callable[..., Path]
DATASOURCES = COLLECTORS / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS = COLLECTORS / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"
TEMPLATES = sorted((COLLECTORS / "alertmanager-templates").glob("*.tmpl"))

# --- Prometheus ------------------------------------------------------------------------------


def test_promtool_check_config(prometheus_config_copy: ConfigCopy) -> None:
    path = prometheus_config_copy()
    result = subprocess.run([require_tool("promtool"), "check", "config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rule files found" in result.stdout


def test_prometheus_loads_every_generated_rule_file_but_the_test_scaled_one(
    prometheus_config_copy: ConfigCopy,
) -> None:
    config = load_yaml(prometheus_config_copy())
    loaded = {Path(p).resolve() for p in config["rule_files"]}
    generated = {p.resolve() for p in (ALERTS / "generated").glob("*.yaml")}
    assert loaded == {p for p in generated if not p.name.endswith("_e2e.yaml")}


def test_prometheus_targets_carry_service_and_environment_labels() -> None:
    config = load_yaml(COLLECTORS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"prometheus", "storefront", "orders", "payments", "worker"} <= set(jobs)
    for name, job in jobs.items():
        for static in job["static_configs"]:
            assert static["labels"]["environment"] == "demo"
            # job = service name (telemetry contract)
            assert static["labels"]["service"] == name
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


# --- Alertmanager ----------------------------------------------------------------------------


def test_amtool_check_config(alertmanager_config_copy: ConfigCopy) -> None:
    path = alertmanager_config_copy()
    result = subprocess.run([require_tool("amtool"), "check-config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(TEMPLATES)} templates" in result.stdout
    assert "3 receivers" in result.stdout


def test_amtool_rejects_a_broken_template(
    alertmanager_config_copy: ConfigCopy, tmp_path: Path
) -> None:
    """The check above really parses the templates: a syntax error makes it fail."""
    broken = tmp_path / "broken.tmpl"
    broken.write_text('{{ define "x" }}{{ .Unclosed ')

    def add_broken(config: dict[str, Any]) -> None:
        config["templates"].append(str(broken))

    path = alertmanager_config_copy(add_broken)
    result = subprocess.run([require_tool("amtool"), "check-config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_alertmanager_routes_group_and_inhibit() -> None:
    config = load_yaml(COLLECTORS / "alertmanager.yml")
    route = config["route"]
    assert route["group_by"] == ["alertname", "service"]
    first = route["routes"][0]
    assert first["receiver"] == "webhook" and first["continue"] is True and "matchers" not in first
    by_severity = {r["matchers"][0]: r["receiver"] for r in route["routes"][1:]}
    assert by_severity == {'severity="critical"': "pager", 'severity="warning"': "tickets"}
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["webhook"]["webhook_configs"][0]["send_resolved"] is True
    assert receivers["pager"]["slack_configs"] and receivers["pager"]["email_configs"]
    assert receivers["tickets"]["slack_configs"]
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["equal"] == ["service", "environment"]


def test_alertmanager_secrets_come_from_files() -> None:
    """No Slack URL or SMTP password in the committed file, only *_file paths."""
    text = (COLLECTORS / "alertmanager.yml").read_text()
    config = yaml.safe_load(text)
    assert "hooks.slack.com" not in text
    glob = config["global"]
    assert "slack_api_url" not in glob and "smtp_auth_password" not in glob
    assert glob["slack_api_url_file"] == "/run/secrets/slack_api_url"
    assert glob["smtp_auth_password_file"] == "/run/secrets/smtp_auth_password"
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack
        for email in receiver.get("email_configs", []):
            assert "auth_password" not in email


def test_notification_templates_carry_summary_description_runbook_and_grafana() -> None:
    text = "\n".join(p.read_text() for p in TEMPLATES)
    defined = set(re.findall(r'{{-?\s*define\s+"([^"]+)"', text))
    used = set(re.findall(r'template "([^"]+)"', (COLLECTORS / "alertmanager.yml").read_text()))
    assert used <= defined, f"undefined templates: {used - defined}"
    for field in ("summary", "description", "runbook_url", "dashboard_url"):
        assert f".Annotations.{field}" in text


# --- Loki ------------------------------------------------------------------------------------


def test_loki_schema_v13_tsdb_structured_metadata() -> None:
    config = load_yaml(COLLECTORS / "loki.yaml")
    latest = config["schema_config"]["configs"][-1]
    assert latest["schema"] == "v13"
    assert latest["store"] == "tsdb"
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["server"]["http_listen_port"] == 3100
    assert config["common"]["replication_factor"] == 1  # single binary
    assert config["auth_enabled"] is False


# --- Grafana ---------------------------------------------------------------------------------


def _datasources() -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in load_yaml(DATASOURCES)["datasources"]}


def test_datasources_have_fixed_uids() -> None:
    sources = _datasources()
    assert {uid: d["type"] for uid, d in sources.items()} == {
        "prometheus": "prometheus", "loki": "loki", "jaeger": "jaeger",
    }


def test_datasource_links_reference_existing_uids() -> None:
    sources = _datasources()
    prom = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert prom == [{"name": "trace_id", "datasourceUid": "jaeger",
                     "urlDisplayLabel": "Open trace in Jaeger"}]
    to_logs = sources["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki" and to_logs["filterByTraceID"] is True
    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    assert derived["name"] == "trace_id" and derived["datasourceUid"] == "jaeger"
    for uid in (prom[0]["datasourceUid"], to_logs["datasourceUid"], derived["datasourceUid"]):
        assert uid in sources


def test_loki_derived_field_matches_contract_log_lines() -> None:
    """The regex pulls the trace id out of a logfmt line shaped as the contract specifies."""
    (derived,) = _datasources()["loki"]["jsonData"]["derivedFields"]
    pattern = re.compile(derived["matcherRegex"])
    line = ('level=error logger=orders.views trace_id=4bf92f3577b34da6a3ce929d0e0e4736 '
            'span_id=00f067aa0ba902b7 msg="payment failed"')
    match = pattern.search(line)
    assert match and match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert pattern.search("level=info logger=x msg=hello") is None
    # `$$` is provisioning's escape for a literal `$`: Grafana sees ${__value.raw}.
    assert derived["url"] == "$${__value.raw}"


def test_jaeger_to_loki_maps_service_name_to_the_stream_label() -> None:
    to_logs = _datasources()["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert {"key": "service.name", "value": "service_name"} in to_logs["tags"]


def test_dashboard_provider_loads_json_from_the_mounted_dir(compose: dict[str, Any]) -> None:
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    mounts = dict(str(v).split(":")[1::-1] for v in compose["services"]["grafana"]["volumes"])
    assert mounts[path] == "./dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./collectors/grafana/provisioning"


# --- OpenTelemetry Collector gateway ---------------------------------------------------------


def test_otel_gateway_pipelines() -> None:
    config = load_yaml(COLLECTORS / "otel-collector-gateway.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    exporters = config["exporters"]
    assert "jaeger:4318" in exporters["otlphttp/traces"]["endpoint"]
    assert exporters["otlphttp/logs"]["endpoint"].endswith("loki:3100/otlp}")
    assert "prometheusremotewrite" in exporters
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "logs", "metrics"}
    for pipeline in pipelines.values():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"] == ["memory_limiter", "batch"]
        for name in pipeline["exporters"]:
            assert name in exporters
