"""compose.yaml: valid per the Compose Specification schema, safe defaults (loopback ports,
pinned images, health checks), and consistent with the collectors' configs and the telemetry
contract. No Docker engine runs here, so the file is checked statically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from . import COLLECTORS, REPO_ROOT, load_yaml

# In CI the schema sits at ../shared/schemas relative to the repository root.
SCHEMA = REPO_ROOT.parent / "shared" / "schemas" / "compose-spec.json"
DEMO_PORTS = {  # telemetry contract: service -> (app port, metrics port)
    "storefront": (8000, 9464),
    "orders": (8001, 9465),
    "payments": (8002, 9466),
    "worker": (None, 9467),
}
DEMO_ENV = {
    "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SPYGLASS_LOKI_URL", "SPYGLASS_METRICS_HOST",
}
OPTIONAL_BUILD_FILES = {"demo_app/Dockerfile"}  # written by the demo_app owner


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports a service listens on as seen from the compose network (published or exposed)."""
    ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def option(argv: list[str], name: str) -> str | None:
    """Value of ``--name=value`` or ``--name value`` in an argv list (before ``--``)."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    for i, arg in enumerate(head):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(head):
            return head[i + 1]
    return None


def test_validates_against_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert SCHEMA.is_file(), f"compose schema not found at {SCHEMA}"
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_expected_services(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {
        "prometheus", "alertmanager", "loki", "jaeger", "grafana",
        "postgres", "redis", "rabbitmq",
        "storefront", "orders", "payments", "worker", "loadgen",
    }


def test_every_mounted_host_path_exists(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (REPO_ROOT / build["context"]).is_dir()
            dockerfile = build["dockerfile"]
            if dockerfile not in OPTIONAL_BUILD_FILES or (REPO_ROOT / dockerfile).exists():
                assert (REPO_ROOT / build["context"] / dockerfile).is_file(), dockerfile


def test_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
            assert len(port.split(":")) == 3, (name, port)


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" not in service:
            # registry images: an exact version, not just a major line
            assert re.match(r"^v?\d+\.\d+(\.\d+)?(-[\w.]+)?$", tag), f"{name}: {image}"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert not check.get("disable"), name


def test_depends_on_waits_for_health(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for dep, cond in service.get("depends_on", {}).items():
            assert dep in services(compose), (name, dep)
            assert cond["condition"] == "service_healthy", (name, dep)


def test_prometheus_scrape_targets_match_demo_services(compose: dict[str, Any]) -> None:
    config = load_yaml(COLLECTORS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, (app_port, metrics_port) in DEMO_PORTS.items():
        (target,) = jobs[name]["static_configs"][0]["targets"]
        host, port = target.split(":")
        service = services(compose)[host]
        assert int(port) == metrics_port
        assert metrics_port in container_ports(service), name
        assert option(service["command"], "--metrics-port") == str(metrics_port), name
        assert option(service["command"], "--service-name") == name
        if app_port is not None:
            assert app_port in container_ports(service), name
            assert str(app_port) in " ".join(service["command"][service["command"].index("--"):])
    (am_target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = am_target.split(":")
    assert int(port) in container_ports(services(compose)[host])


def test_datasource_urls_match_service_ports(compose: dict[str, Any]) -> None:
    path = COLLECTORS / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    for source in load_yaml(path)["datasources"]:
        url = urlsplit(source["url"])
        assert url.hostname in services(compose), source["url"]
        assert url.port in container_ports(services(compose)[url.hostname]), source["url"]


def test_prometheus_runs_the_repo_config_with_exemplars(compose: dict[str, Any]) -> None:
    prom = services(compose)["prometheus"]
    assert "--enable-feature=exemplar-storage" in prom["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert "./collectors/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]


def test_alertmanager_gets_its_secrets_from_the_environment(compose: dict[str, Any]) -> None:
    am = services(compose)["alertmanager"]
    assert "--cluster.listen-address=" in am["command"]
    assert set(am["secrets"]) == {"slack_api_url", "smtp_auth_password"}
    assert compose["secrets"]["slack_api_url"] == {"environment": "SLACK_API_URL"}
    assert compose["secrets"]["smtp_auth_password"] == {"environment": "SMTP_AUTH_PASSWORD"}
    config = load_yaml(COLLECTORS / "alertmanager.yml")
    for name in am["secrets"]:
        file_keys = [k for k, v in config["global"].items() if v == f"/run/secrets/{name}"]
        assert file_keys, f"alertmanager.yml does not read /run/secrets/{name}"


def test_jaeger_and_loki_endpoints_match_demo_env(compose: dict[str, Any]) -> None:
    jaeger = services(compose)["jaeger"]
    assert {4317, 4318, 16686} <= container_ports(jaeger)
    assert jaeger["environment"]["COLLECTOR_OTLP_GRPC_HOST_PORT"].endswith(":4317")
    assert jaeger["environment"]["COLLECTOR_OTLP_HTTP_HOST_PORT"].endswith(":4318")
    loki_port = load_yaml(COLLECTORS / "loki.yaml")["server"]["http_listen_port"]
    assert loki_port in container_ports(services(compose)["loki"])
    for name in ("storefront", "orders", "payments", "worker", "loadgen"):
        env = services(compose)[name]["environment"]
        assert env.keys() >= DEMO_ENV, name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["SPYGLASS_LOKI_URL"] == f"http://loki:{loki_port}"
        assert env["SPYGLASS_METRICS_HOST"] == "0.0.0.0"
        for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            assert urlsplit(env[key]).hostname in services(compose), (name, key)


@pytest.mark.parametrize(
    ("name", "server"),
    [
        ("storefront", ["uvicorn", "demo_app.storefront.app:app"]),
        ("orders", ["gunicorn", "demo_app.orders.wsgi:application"]),
        ("payments", ["gunicorn", "demo_app.payments.app:app"]),
        ("worker", ["celery", "-A", "demo_app.worker.app", "worker"]),
    ],
)
def test_demo_services_run_under_spyglass(
    compose: dict[str, Any], name: str, server: list[str]
) -> None:
    argv = services(compose)[name]["command"]
    assert argv[:2] == ["spyglass", "run"]
    assert option(argv, "--environment") == "demo"
    wrapped = argv[argv.index("--") + 1:]
    assert wrapped[: len(server)] == server


def test_grafana_login_documented(compose: dict[str, Any]) -> None:
    env = services(compose)["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_USER"] == "admin"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "admin"
    assert "admin/admin" in (REPO_ROOT / "compose.yaml").read_text()


def test_rules_mount_is_the_generated_dir(compose: dict[str, Any]) -> None:
    mounts = dict(str(v).split(":")[1::-1] for v in services(compose)["prometheus"]["volumes"]
                  if str(v).startswith("."))
    assert Path(REPO_ROOT / mounts["/etc/prometheus/rules"]).resolve() == (
        REPO_ROOT / "alerts" / "generated"
    )
