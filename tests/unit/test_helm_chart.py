"""The Helm chart (deploy/helm/cityhelp), rendered offline and checked against the code.

helm is built from the Go module proxy and cached (deploy/local/helm.sh; `make test` builds it
before pytest). The built-in kinds are validated with kubernetes-validate (strict: no unknown
fields) at the oldest Kubernetes the chart supports and the newest kubernetes-validate knows;
KEDA's and Strimzi's resources against their CRDs' fields (tests/support/crd_fields.py). Then
the rendered manifests are compared with the services' settings, their consumer groups, the
ACL matrix, config/ and the capacity model.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from shared.settings import DEVELOPMENT_VALUE
from shared.topics import SERVICES, ServiceName, Topic
from tests.support.crd_fields import KAFKA_AUTH_PARAMETERS, KAFKA_TRIGGER_METADATA, SCHEMAS
from tests.support.settings_env import CONTRACT_PORTS, SETTINGS, env_defaults, secret_names
from tools import capacity

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "cityhelp"
ACLS = REPO / "deploy" / "local" / "kafka" / "sasl" / "acls.toml"
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
KEYS = sorted(set().union(*(secret_names(s) for s in SETTINGS.values())))
# What an operator passes: every key, an Ingress with TLS.
DIGEST = "0" * 64
JSON_KEYS = {
    "INTAKE_PARTNER_SECRETS": '{"hotline-secret": "s"}',
    "VERIFY_REVIEWER_KEYS": '{"verifier-1": "k"}',
    "ROUTE_COMMAND_KEYS": f'{{"desk-1": "{DIGEST}"}}',
    "ROUTE_BOARD_KEYS": f'{{"medical": "{DIGEST}"}}',
}
TEST_VALUES: dict[str, Any] = {
    "keys": {"values": {name: JSON_KEYS.get(name, f"value-of-{name.lower()}") for name in KEYS}},
    "ingress": {"enabled": True, "tlsSecret": "help-city-tls"},
}


@pytest.fixture(scope="module")
def helm() -> str:
    """The cached helm binary (built on first use; a failed build fails, never skips)."""
    out = subprocess.run(
        [str(REPO / "deploy" / "local" / "helm.sh")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"deploy/local/helm.sh failed:\n{out.stderr[-2000:]}"
    return out.stdout.strip().splitlines()[-1]


def run_helm(
    helm: str, tmp: Path, values: dict[str, Any], *command: str, kube: str = "1.33.0"
) -> subprocess.CompletedProcess[str]:
    """``helm <command>`` on the chart's values ``values`` (written to ``tmp``)."""
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return subprocess.run(
        [helm, *command, "--kube-version", kube, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": str(tmp / "cache")},
    )


def render(helm: str, tmp: Path, values: dict[str, Any], kube: str = "1.33.0") -> list[Any]:
    out = run_helm(helm, tmp, values, "template", "city", str(CHART), kube=kube)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def manifests(helm: str, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return render(helm, tmp_path_factory.mktemp("helm"), TEST_VALUES)


def of_kind(manifests: list[Any], kind: str) -> dict[str, Any]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container(manifests: list[Any], stage: str) -> dict[str, Any]:
    spec = of_kind(manifests, "Deployment")[f"city-{stage}"]["spec"]["template"]["spec"]
    (found,) = spec["containers"]
    result: dict[str, Any] = found
    return result


def test_helm_lint_finds_nothing(helm: str, tmp_path: Path) -> None:
    out = run_helm(helm, tmp_path, TEST_VALUES, "lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout
    assert "[ERROR]" not in out.stdout


def test_the_chart_renders_every_resource(manifests: list[Any]) -> None:
    kinds = {m["kind"] for m in manifests}
    assert kinds == {
        "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget", "Ingress",
        "ScaledObject", "TriggerAuthentication", "KafkaTopic", "KafkaUser",
    }  # fmt: skip
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ScaledObject"):
        assert set(of_kind(manifests, kind)) == {f"city-{s}" for s in SERVICES}, kind


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_builtin_kinds_pass_the_kubernetes_schemas(manifests: list[Any], kube: str) -> None:
    builtin = [m for m in manifests if m["kind"] not in SCHEMAS]
    assert len(builtin) > 10
    for manifest in builtin:
        kubernetes_validate.validate(manifest, kube, strict=True)


def test_custom_resources_pass_their_crd_fields(manifests: list[Any]) -> None:
    custom = [m for m in manifests if m["kind"] in SCHEMAS]
    assert {m["kind"] for m in custom} == set(SCHEMAS)
    validators = {kind: jsonschema.Draft202012Validator(s) for kind, s in SCHEMAS.items()}
    for manifest in custom:
        validators[manifest["kind"]].validate(manifest)
    kafka = jsonschema.Draft202012Validator(KAFKA_TRIGGER_METADATA)
    for scaled in of_kind(manifests, "ScaledObject").values():
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "kafka":
                kafka.validate(trigger["metadata"])
    for auth in of_kind(manifests, "TriggerAuthentication").values():
        parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert parameters <= KAFKA_AUTH_PARAMETERS


def test_a_misspelt_field_fails_either_check(manifests: list[Any]) -> None:
    scaled = dict(of_kind(manifests, "ScaledObject")["city-verify"])
    scaled["spec"] = {**scaled["spec"], "maxReplicas": 3}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCHEMAS["ScaledObject"])
    trigger = of_kind(manifests, "ScaledObject")["city-verify"]["spec"]["triggers"][0]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**trigger["metadata"], "sasl": "scram_sha_512"}, KAFKA_TRIGGER_METADATA
        )
    service = dict(of_kind(manifests, "Service")["city-verify"])
    service["spec"] = {**service["spec"], "prots": []}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBE_VERSIONS[0], strict=True)


def env_values(manifests: list[Any], stage: str) -> dict[str, str]:
    """The container's environment as the pod sees it (Secrets resolved from the render)."""
    secrets = of_kind(manifests, "Secret")
    out: dict[str, str] = {}
    for entry in container(manifests, stage)["env"]:
        source = entry.get("valueFrom", {})
        if "value" in entry:
            out[entry["name"]] = entry["value"]
        elif "fieldRef" in source:
            out[entry["name"]] = f"city-{stage}-7d9f-abcde"
        else:
            ref = source["secretKeyRef"]
            secret = secrets.get(ref["name"], {}).get("stringData", {})
            # Secrets the chart does not own (Strimzi's users, MongoDB's URI, the CA): a value.
            out[entry["name"]] = secret.get(
                ref["key"], "mongodb://u:p@mongo-0,mongo-1/?replicaSet=rs0"
            )
    return out


def unsafe_default(value: Any) -> bool:
    """A default no production pod may keep: loopback, a published development value, nothing."""
    text = str(value)
    return "127.0.0.1" in text or "localhost" in text or text.startswith(DEVELOPMENT_VALUE)


@pytest.mark.parametrize("stage", SERVICES)
def test_every_variable_the_code_reads_is_set_or_safe(
    manifests: list[Any], stage: ServiceName
) -> None:
    settings = SETTINGS[stage]
    defaults, env = env_defaults(settings), env_values(manifests, stage)
    assert set(env) - set(defaults) - {"SERVICE"} == set(), "the chart sets unknown variables"
    secrets = secret_names(settings)
    for name, default in defaults.items():
        if name in env:
            continue
        assert name not in secrets, f"{stage}: secret {name} is not set by the chart"
        assert not unsafe_default(default), f"{stage}: {name} keeps its default {default!r}"
    # the pod's environment is one the service accepts and starts with
    with pytest.MonkeyPatch.context() as patch:
        for name in defaults:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        parsed = settings()
        assert parsed.development_defaults() == []
        assert parsed.http_host == "0.0.0.0"
        assert parsed.http_port == CONTRACT_PORTS[stage]
        assert (parsed.kafka_replication_factor, parsed.kafka_min_insync_replicas) == (3, 2)
        assert parsed.kafka_security_protocol == "SASL_SSL"
        assert parsed.kafka_sasl_username == f"svc-{stage}"


@pytest.mark.parametrize("stage", SERVICES)
def test_probes_ports_security_and_resources(manifests: list[Any], stage: ServiceName) -> None:
    deployment = of_kind(manifests, "Deployment")[f"city-{stage}"]
    pod = deployment["spec"]["template"]
    c = container(manifests, stage)
    port = CONTRACT_PORTS[stage]
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
    # memory: above the measured peak RSS, with room; CPU: one core at most (one process)
    rss = tomllib.loads(capacity.INPUTS.read_text())["measured"]["rss_mb"][stage]
    request = int(c["resources"]["requests"]["memory"].removesuffix("Mi"))
    limit = int(c["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert rss < request <= limit
    assert c["resources"]["limits"]["cpu"] == "1"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    service = of_kind(manifests, "Service")[f"city-{stage}"]["spec"]
    pdb = of_kind(manifests, "PodDisruptionBudget")[f"city-{stage}"]["spec"]
    labels = pod["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] >= 1
    assert deployment["spec"]["selector"]["matchLabels"] == pdb["selector"]["matchLabels"]


def config_files() -> Iterator[Path]:
    return (p for p in sorted((REPO / "config").rglob("*")) if p.is_file())


def test_every_config_file_is_mounted_where_the_services_read_it(manifests: list[Any]) -> None:
    data = of_kind(manifests, "ConfigMap")["city-config"]["data"]
    for stage in SERVICES:
        c = container(manifests, stage)
        spec = of_kind(manifests, "Deployment")[f"city-{stage}"]["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == "config"]
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
        assert env_values(manifests, stage)["CITYHELP_CONFIG_DIR"] == mount["mountPath"]
        paths = {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}
        expected = {str(p.relative_to(REPO / "config")): p.read_text() for p in config_files()}
        assert paths == expected


def test_autoscaling_follows_each_stages_consumer_groups(manifests: list[Any]) -> None:
    from tools.capacity import subscriptions

    scaled = of_kind(manifests, "ScaledObject")
    auth = of_kind(manifests, "TriggerAuthentication")
    partitions = {
        t["spec"]["topicName"]: t["spec"]["partitions"]
        for t in of_kind(manifests, "KafkaTopic").values()
    }
    for stage, subs in subscriptions().items():
        spec = scaled[f"city-{stage}"]["spec"]
        assert spec["scaleTargetRef"]["name"] == f"city-{stage}"
        kafka = [t for t in spec["triggers"] if t["type"] == "kafka"]
        pairs = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in kafka}
        assert pairs == {(group, topic) for group, topics in subs for topic in topics}
        for trigger in kafka:
            assert auth[trigger["authenticationRef"]["name"]]
            assert trigger["metadata"]["allowIdleConsumers"] == "false"
            # KEDA's names for the services' SASL_SSL and SCRAM-SHA-512
            assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == (
                "scram_sha512",
                "enable",
            )
        inputs = [partitions[topic] for _, topic in pairs]
        assert spec["minReplicaCount"] >= 2
        # the partitions are the ceiling of useful replicas (intake, fed by HTTP, also on CPU)
        if stage == "intake":
            assert spec["maxReplicaCount"] >= max(inputs)
            assert any(t["type"] == "cpu" for t in spec["triggers"])
        else:
            assert spec["maxReplicaCount"] == max(inputs)


def test_the_charts_figures_are_the_capacity_models(manifests: list[Any]) -> None:
    plan, _ = capacity.compute(None)  # the documented measured defaults
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(manifests, "KafkaTopic").values()}
    assert {name: spec["partitions"] for name, spec in topics.items()} == plan.partitions
    assert set(topics) == {t.value for t in Topic}
    for spec in topics.values():
        assert spec["replicas"] == 3
        assert spec["config"] == {"min.insync.replicas": 2}
    for stage, figures in plan.stages.items():
        spec = of_kind(manifests, "ScaledObject")[f"city-{stage}"]["spec"]
        assert spec["maxReplicaCount"] == figures.max_replicas, stage
        lags = {t["metadata"]["lagThreshold"] for t in spec["triggers"] if t["type"] == "kafka"}
        assert lags == {str(figures.lag_threshold)}, stage


def test_kafka_users_are_the_acl_matrix(manifests: list[Any]) -> None:
    principals = tomllib.loads(ACLS.read_text())["principals"]
    users = of_kind(manifests, "KafkaUser")
    assert set(users) == set(principals)
    for name, entry in principals.items():
        spec = users[name]["spec"]
        assert spec["authentication"] == {"type": "scram-sha-512"}
        granted: dict[str, set[tuple[str, str]]] = {"read": set(), "write": set(), "groups": set()}
        for acl in spec["authorization"]["acls"]:
            resource = acl["resource"]
            assert resource["patternType"] == "literal"
            kind = {
                ("topic", ("Read", "Describe")): "read",
                ("topic", ("Write", "Describe")): "write",
                ("group", ("Read",)): "groups",
            }[(resource["type"], tuple(acl["operations"]))]
            granted[kind].add((resource["type"], resource["name"]))
        for kind in ("read", "write", "groups"):
            assert {n for _, n in granted[kind]} == set(entry[kind]), f"{name} {kind}"


def test_intake_is_reachable_through_the_ingress(manifests: list[Any]) -> None:
    (ingress,) = of_kind(manifests, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend == {"name": "city-intake", "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["secretName"] == "help-city-tls"


def test_without_autoscaling_or_strimzi_the_chart_renders_fixed_replicas(
    helm: str, tmp_path: Path
) -> None:
    values = {
        "keys": {"existingSecret": "city-keys"},
        "autoscaling": {"enabled": False},
        "kafka": {"strimzi": {"enabled": False}},
    }
    manifests = render(helm, tmp_path, values, kube="1.29.0")
    kinds = {m["kind"] for m in manifests}
    assert kinds.isdisjoint({"ScaledObject", "TriggerAuthentication", "KafkaTopic", "KafkaUser"})
    for deployment in of_kind(manifests, "Deployment").values():
        assert deployment["spec"]["replicas"] == 2
        kubernetes_validate.validate(deployment, "1.29.0", strict=True)
    # the keys come from the operator's Secret; the chart creates none of them
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for stage in SERVICES
        for e in container(manifests, stage)["env"]
        if e["name"] in KEYS and "valueFrom" in e
    }
    assert "city-keys" in refs
    assert "city-keys" not in of_kind(manifests, "Secret")


def test_a_missing_key_stops_the_install(helm: str, tmp_path: Path) -> None:
    values = {
        "keys": {
            "values": {
                k: v for k, v in TEST_VALUES["keys"]["values"].items() if k != "NOTIFY_SMS_TOKEN"
            }
        }
    }
    out = run_helm(helm, tmp_path, values, "template", "city", str(CHART))
    assert out.returncode != 0
    assert "keys.values.NOTIFY_SMS_TOKEN is not set" in out.stderr
