"""docker-compose.yml cannot run here (no Docker engine), so check it against the code.

The file is rendered by ``docker compose config`` where a compose client answers, else parsed
here (YAML anchors and merge keys, and ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``
interpolated from an env file made of deploy/env.sample's names), then every service, port,
variable, volume and healthcheck is checked against the settings classes and the contract.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from shared.topics import SERVICES
from tests.support.settings_env import CONTRACT_PORTS, SETTINGS, env_defaults, secret_names
from tools.healthcheck import probe_url

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_SAMPLE = REPO / "deploy" / "env.sample"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def sample() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in ENV_SAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    ]
    return {name.strip(): value.strip() for name, value in pairs}


def sample_names() -> list[str]:
    return list(sample())


def filled_env() -> dict[str, str]:
    """What an operator's .env holds: env.sample with every empty value filled in."""
    values = {name: value or f"test-value-of-{name.lower()}" for name, value in sample().items()}
    values |= {"INTAKE_OPEN311_API_KEYS": "k1,k2", "INTAKE_PARTNER_SECRETS": '{"p": "s"}'}
    values |= {"VERIFY_REVIEWER_KEYS": '{"verifier-1": "key"}', "ROUTE_COMMAND_KEYS": "{}"}
    values |= {"ROUTE_BOARD_KEYS": "{}"}
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, kind, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if kind in (":?", "?") and not value:
            raise AssertionError(f"compose refuses to start without {name}: {arg}")
        if kind in (":-", "-") and not value:
            return arg or ""
        return value or ""

    return _VAR.sub(one, text)


def render(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """``docker compose config`` when a compose client answers, else this file's own parse."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            env_file = tmp / ".env"
            env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            out = subprocess.run(
                [
                    docker,
                    "compose",
                    "-f",
                    str(COMPOSE),
                    "--env-file",
                    str(env_file),
                    "config",
                    "--format",
                    "json",
                    "--no-interpolate",
                ],
                capture_output=True,
                check=True,
                text=True,
            )
            data: dict[str, Any] = interpolated(json.loads(out.stdout), env)
            return data
    # As compose does: parse first, then interpolate each value.
    parsed: dict[str, Any] = interpolated(yaml.safe_load(COMPOSE.read_text()), env)
    return parsed


def interpolated(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, dict):
        return {k: interpolated(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolated(v, env) for v in value]
    return value


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return render(filled_env(), tmp_path_factory.mktemp("compose"))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port."""
    out: dict[int, int] = {}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out[int(port["published"])] = int(port["target"])
        else:
            host, container = str(port).rsplit(":", 1)
            out[int(host.rsplit(":", 1)[-1])] = int(container)
    return out


def test_every_service_is_in_compose_on_its_contract_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, settings in SETTINGS.items():
        env = environment(services[name])
        port = settings().http_port
        assert port == CONTRACT_PORTS[name]
        assert published(services[name]) == {port: port}
        assert env["SERVICE"] == name
        assert int(env[f"{name.upper()}_HTTP_PORT"]) == port
        # reachable from the other containers and the published port, not loopback only
        assert env[f"{name.upper()}_HTTP_HOST"] == "0.0.0.0"
        assert (REPO / "services" / name / "__main__.py").exists()


def test_every_variable_in_compose_exists_in_the_settings_and_parses(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, settings in SETTINGS.items():
        env = environment(compose["services"][name])
        known = set(env_defaults(settings)) | {"SERVICE"}
        assert set(env) - known == set(), f"{name}: unknown variables {sorted(set(env) - known)}"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # every value is one the service accepts, and no key is left at a published default
        assert settings().development_defaults() == [], name
        assert env["CITYHELP_DEVELOPMENT"] == "0"
        for key in env:
            monkeypatch.delenv(key)


def test_services_reach_kafka_and_the_replica_set_by_their_compose_names(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    kafka = environment(services["kafka"])
    listeners = dict(
        item.split("://", 1) for item in kafka["KAFKA_LISTENERS"].split(",")
    )  # name -> ":port"
    advertised = dict(
        item.split("://", 1) for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    mongod = services["mongodb"]["command"]
    replica_set = mongod[mongod.index("--replSet") + 1]
    for name in SERVICES:
        env = environment(services[name])
        host, port = env["KAFKA_BOOTSTRAP"].split(":")
        assert host == "kafka"
        assert f"kafka:{port}" in advertised.values()
        assert env["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
        uri = urlsplit(env["MONGODB_URI"])
        assert uri.hostname == "mongodb"
        assert parse_qs(uri.query)["replicaSet"] == [replica_set]
        assert int(env["KAFKA_REPLICATION_FACTOR"]) == 1  # one broker
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 1
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == depends["mongodb"]["condition"] == "service_healthy"
    assert set(listeners) == {"PLAINTEXT", "HOST", "CONTROLLER"}


def test_kafka_has_a_host_listener_on_the_contract_bootstrap(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = environment(kafka)
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host_port = int(advertised["HOST"].rsplit(":", 1)[1])
    assert advertised["HOST"].startswith("127.0.0.1:")
    assert host_port == 9092  # the brief's default bootstrap, 127.0.0.1:9092
    assert published(kafka)[host_port] == int(listeners["HOST"].lstrip(":"))
    assert "HOST:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]


def test_kafka_and_mongodb_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    mounts = {}
    for name in ("kafka", "mongodb", "prometheus", "grafana", "alertmanager"):
        for volume in compose["services"][name]["volumes"]:
            source, target = (
                (volume["source"], volume["target"])
                if isinstance(volume, dict)
                else volume.split(":")[:2]
            )
            if not source.startswith("."):
                assert source in declared, f"{name}: volume {source} is not declared"
                mounts[name] = target
    assert mounts["kafka"] == environment(compose["services"]["kafka"])["KAFKA_LOG_DIRS"]
    assert mounts["mongodb"] == "/data/db"


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"
            assert dependency in compose["services"]


def test_the_services_healthcheck_asks_their_own_port(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "tools.healthcheck"]
        env = environment(service)
        monkeypatch.setenv(f"{name.upper()}_HTTP_PORT", env[f"{name.upper()}_HTTP_PORT"])
        assert probe_url(name, ready=False) == f"http://127.0.0.1:{CONTRACT_PORTS[name]}/healthz"
    assert (REPO / "tools" / "healthcheck.py").exists()


def test_keys_come_from_the_env_file_and_each_is_documented() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = {m.group(1) for m in _VAR.finditer(text) if m.group(2) in (":?", "?")}
    documented = set(sample_names())
    assert required - documented == set(), "compose needs variables env.sample does not name"
    secrets = set().union(*(secret_names(s) for s in SETTINGS.values()))
    kafka_credentials = {n for n in secrets if n.startswith("KAFKA_")}  # SASL: not in compose
    assert secrets - kafka_credentials <= required
    with pytest.raises(AssertionError, match="INTAKE_TRACKING_SECRET"):
        interpolate(text, {k: v for k, v in filled_env().items() if k != "INTAKE_TRACKING_SECRET"})


def test_notify_sends_sms_to_the_local_gateway(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gateway, env = services["sms-gateway"], environment(services["notify"])
    command = gateway["command"]
    module = command[command.index("-m") + 1]
    assert (REPO / (module.replace(".", "/") + ".py")).exists(), module
    port = int(command[command.index("--port") + 1])
    assert json.loads(env["NOTIFY_CHANNELS"]) == ["sms"]
    assert urlsplit(env["NOTIFY_SMS_URL"])[:2] == ("http", f"sms-gateway:{port}")
    assert command[command.index("--token") + 1] == env["NOTIFY_SMS_TOKEN"]
    assert services["notify"]["depends_on"]["sms-gateway"]["condition"] == "service_healthy"


def mounted(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository file of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = (
            (volume["source"], volume["target"])
            if isinstance(volume, dict)
            else volume.split(":")[:2]
        )
        if source.startswith((".", "/")):
            out[target] = (REPO / source).resolve()
    return out


def test_prometheus_scrapes_every_service_with_the_alert_rules(compose: dict[str, Any]) -> None:
    services = compose["services"]
    files = mounted(services["prometheus"])
    config = yaml.safe_load(files["/etc/prometheus/prometheus.yml"].read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {n: [f"{n}:{CONTRACT_PORTS[n]}"] for n in SERVICES}
    for rule_file in config["rule_files"]:
        assert (
            files[f"/etc/prometheus/{rule_file}"] == REPO / "deploy" / "prometheus" / "alerts.yml"
        )
    alertmanager = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    am_port = int(alertmanager[0].split(":")[1])
    assert alertmanager == [f"alertmanager:{am_port}"]
    assert am_port in published(services["alertmanager"])
    am_files = mounted(services["alertmanager"])
    assert yaml.safe_load(am_files["/etc/alertmanager/alertmanager.yml"].read_text())["route"]


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus(compose: dict[str, Any]) -> None:
    files = mounted(compose["services"]["grafana"])
    datasources = files["/etc/grafana/provisioning/datasources"]
    (source,) = yaml.safe_load((datasources / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert 9090 in published(compose["services"]["prometheus"])
    provider = yaml.safe_load(
        (files["/etc/grafana/provisioning/dashboards"] / "cityhelp.yml").read_text()
    )["providers"][0]
    folder = provider["options"]["path"]
    dashboards = [p for target, p in files.items() if target.startswith(folder + "/")]
    assert dashboards == [REPO / "deploy" / "grafana" / "cityhelp.json"]
    assert json.loads(dashboards[0].read_text())["uid"] == "cityhelp-pipeline"


def test_the_image_runs_unprivileged_with_a_healthcheck_from_the_lock() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    text = " ".join(lines)
    assert "--require-hashes -r /tmp/requirements.lock" in text
    assert "pip install --no-deps ." in text
    assert (REPO / "requirements.lock").exists()


def test_infrastructure_images_are_pinned(compose: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in compose["services"].items() if "image" in s}
    assert images["kafka"].startswith("apache/kafka:")
    assert images["mongodb"].startswith("mongo:")
    for name, image in images.items():
        assert ":" in image, name
        assert not image.endswith(":latest"), name
    assert environment(compose["services"]["kafka"])["KAFKA_PROCESS_ROLES"] == "broker,controller"
    topics = tomllib.loads((REPO / "config" / "topics.toml").read_text())
    assert topics["defaults"]["replication_factor"] == 1


def test_composes_prometheus_configuration_is_valid_with_the_rules(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """promtool checks the files as the container sees them (the mounts laid out in a folder)."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed: run deploy/local/tools.sh, which make test does")
    for target, source in mounted(compose["services"]["prometheus"]).items():
        shutil.copy(source, tmp_path / Path(target).name)
    out = subprocess.run(
        [exe, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "alerts.yml" in out.stdout
