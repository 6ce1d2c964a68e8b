"""Kafka security from configuration, and the access matrix checked against the code.

Every Kafka client the project creates (FastStream's consumers and producer, the topic set-up's
admin client, the lag collector's admin client and consumer) gets TLS and SASL from the same
settings; the ACLs of deploy/local/kafka/sasl/acls.toml give each service exactly the topics and
groups it subscribes to and publishes to; deploy/env.sample names every secret-bearing variable
and holds no value for any of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from pydantic import SecretStr, ValidationError

from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.notify.app import build_app as build_notify
from services.notify.settings import NotifySettings
from services.route.app import build_app as build_route
from services.route.settings import RouteSettings
from services.verify.app import build_app as build_verify
from services.verify.settings import VerifySettings
from shared import kafka as shared_kafka
from shared.kafka import build_broker, kafka_security
from shared.keys import KeyDigests
from shared.lag import client_options
from shared.runtime import Runtime
from shared.settings import ServiceSettings
from shared.topics import DEPARTMENTS, DISPATCH_TOPICS, Topic, dispatch_topic

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ACLS = REPO / "deploy" / "local" / "kafka" / "sasl" / "acls.toml"
ENV_SAMPLE = REPO / "deploy" / "env.sample"

SASL = {
    "KAFKA_BOOTSTRAP": "kafka-1.city.example:9096",
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "svc-route",
    "KAFKA_SASL_PASSWORD": "pw-from-the-environment",
}


def settings(**env: str) -> ServiceSettings:
    return ServiceSettings(**env)  # type: ignore[arg-type]


# ---------------------------------------------------------------- security from settings


def test_plaintext_has_no_security_object() -> None:
    plain = settings(KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    assert kafka_security(plain) is None
    assert client_options(plain)["security_protocol"] == "PLAINTEXT"


def test_scram_over_plaintext() -> None:
    security = kafka_security(settings(**SASL))
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password) == ("svc-route", "pw-from-the-environment")
    assert security.use_ssl is False


def test_scram_256_over_tls_uses_the_configured_ca(tmp_path: Path) -> None:
    env = {**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}
    security = kafka_security(settings(**env))
    assert isinstance(security, SASLScram256)
    assert security.use_ssl is True
    assert isinstance(security.ssl_context, ssl.SSLContext)
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED
    missing_ca = {**env, "KAFKA_SSL_CAFILE": str(tmp_path / "no-such-ca.pem")}
    with pytest.raises(FileNotFoundError):  # a wrong CA path fails loudly, never silently
        kafka_security(settings(**missing_ca))


def test_tls_without_sasl() -> None:
    security = kafka_security(settings(KAFKA_SECURITY_PROTOCOL="SSL"))
    assert type(security) is BaseSecurity
    assert security.use_ssl is True


def test_faststream_clients_get_the_credentials() -> None:
    env = {**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}
    broker = build_broker(settings(**env), service="route")
    # The consumers FastStream creates for every subscriber are built from these options.
    options = broker.config.broker_config.builder.keywords  # type: ignore[attr-defined]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "svc-route",
        "pw-from-the-environment",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_lag_collector_clients_get_the_credentials() -> None:
    options = client_options(settings(**SASL))
    assert options == {
        "bootstrap_servers": "kafka-1.city.example:9096",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc-route",
        "sasl_plain_password": "pw-from-the-environment",
    }


def test_topic_setup_admin_gets_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Admin:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        async def start(self) -> None:
            raise KafkaConnectionError("no broker in a unit test")

    monkeypatch.setattr(shared_kafka, "AIOKafkaAdminClient", Admin)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(shared_kafka.ensure_topics(settings(**SASL), attempts=1))
    assert seen["security_protocol"] == "SASL_PLAINTEXT"
    assert seen["sasl_mechanism"] == "SCRAM-SHA-512"
    assert seen["sasl_plain_username"] == "svc-route"
    assert seen["sasl_plain_password"] == "pw-from-the-environment"


def test_no_kafka_client_is_created_outside_the_secured_factories() -> None:
    """A client built without the shared options would connect without TLS/SASL: every file
    that creates one takes its options from shared.lag.client_options or shared.kafka."""
    factories = ("client_options(", "kafka_security(", "build_broker(")
    constructors = (
        "AIOKafkaConsumer(",
        "AIOKafkaProducer(",
        "AIOKafkaAdminClient(",
        "KafkaBroker(",
    )
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for folder in ("shared", "services")
        for path in sorted((REPO / folder).rglob("*.py"))
        for name in constructors
        if name in (text := path.read_text(encoding="utf-8"))
        and not any(factory in text for factory in factories)
    ]
    assert offenders == []


def test_service_settings_read_the_security_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL.items():
        monkeypatch.setenv(name, value)
    for cls in (IntakeSettings, VerifySettings, RouteSettings, NotifySettings):
        loaded = cls()
        assert loaded.kafka_security_protocol == "SASL_PLAINTEXT"
        assert loaded.kafka_sasl_username == "svc-route"


# ---------------------------------------------------------------- ACLs against the code


def principals() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = tomllib.loads(ACLS.read_text(encoding="utf-8"))[
        "principals"
    ]
    return loaded


def runtime_of(name: str) -> Runtime:
    """A service's composition root, built without connecting to anything."""
    builders: dict[str, Any] = {
        "intake": (build_intake, IntakeSettings),
        "verify": (build_verify, VerifySettings),
        "route": (build_route, RouteSettings),
        "notify": (build_notify, NotifySettings),
    }
    build, cls = builders[name]
    app = build(cls(), create_topics=False)
    runtime: Runtime = app.state.runtime
    return runtime


# Topics a service reads outside its consumer groups: route looks on its own dispatch topics
# for a leg stored before a crash (services/route/handlers/effects.py went_out,
# services/route/published.py).
LOOKUPS: dict[str, set[str]] = {"route": {t.value for t in DISPATCH_TOPICS}}


@pytest.mark.parametrize("service", ["intake", "verify", "route", "notify"])
def test_acls_grant_each_service_exactly_what_it_uses(service: str) -> None:
    rt = runtime_of(service)
    entry = principals()[f"svc-{service}"]
    reads = {topic for sub in rt.consumers for topic in sub.topics} | LOOKUPS.get(service, set())
    groups = {sub.group for sub in rt.consumers}
    writes = {rt.names(topic) for topic in rt.bus._publishers}
    assert sorted(entry["read"]) == sorted(reads)
    assert sorted(entry["groups"]) == sorted(groups)
    assert sorted(entry["write"]) == sorted(writes)


def test_acls_name_only_contract_topics() -> None:
    contract = {t.value for t in Topic}
    for name, entry in principals().items():
        named = set(entry.get("read", [])) | set(entry.get("write", []))
        assert named <= contract, f"{name}: {sorted(named - contract)}"


def test_a_department_reads_its_own_dispatch_topic_and_writes_only_status() -> None:
    all_principals = principals()
    for department in DEPARTMENTS:
        entry = all_principals[f"dept-{department}"]
        assert entry["read"] == [dispatch_topic(department).value]
        assert entry["groups"] == [f"dept-{department}"]
        assert entry["write"] == [Topic.STATUS.value]


def test_every_partner_only_posts_and_every_configured_partner_has_a_principal() -> None:
    partners = tomllib.loads((REPO / "config" / "partners.toml").read_text(encoding="utf-8"))
    all_principals = principals()
    for partner in partners["partners"]:
        entry = all_principals[f"partner-{partner}"]
        assert (entry["read"], entry["groups"]) == ([], [])
        assert entry["write"] == [Topic.PARTNER_INBOUND.value]


def test_only_the_operator_is_a_super_user_and_nobody_else_is_allowed_by_default() -> None:
    props = (ACLS.parent / "server.properties.in").read_text(encoding="utf-8")
    lines = dict(
        line.split("=", 1) for line in props.splitlines() if "=" in line and line[0] != "#"
    )
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert lines["super.users"].split(";") == ["User:admin", "User:ANONYMOUS"]
    # ANONYMOUS exists only on the controller listener: the client listener is SASL only.
    assert lines["listeners"].startswith("SASL_PLAINTEXT://127.0.0.1:")
    assert "PLAINTEXT://" not in lines["listeners"].replace("SASL_PLAINTEXT://", "")
    assert "CONTROLLER://127.0.0.1:" in lines["listeners"]
    assert "ANONYMOUS" not in ACLS.read_text(encoding="utf-8")


# ---------------------------------------------------------------- secrets from the environment


def secret_variables() -> set[str]:
    """Environment variables of settings fields that carry a secret."""
    words = ("secret", "password", "token", "key")
    found: set[str] = set()
    for cls in (ServiceSettings, IntakeSettings, VerifySettings, RouteSettings, NotifySettings):
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            secret_type = field.annotation is SecretStr or "SecretStr" in str(field.annotation)
            if not (secret_type or any(w in name for w in words)):
                continue
            alias = field.validation_alias
            found.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return found


def env_sample() -> dict[str, str]:
    lines = ENV_SAMPLE.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def test_env_sample_lists_every_secret_without_a_value() -> None:
    sample = env_sample()
    wanted = secret_variables()
    assert "KAFKA_SASL_PASSWORD" in wanted
    assert "INTAKE_PARTNER_SECRETS" in wanted
    assert sorted(wanted - set(sample)) == []
    for name in wanted:
        assert sample[name] in ("", "''", '""', "{}", "'{}'"), f"{name} has a value in env.sample"


# ---------------------------------------------------------------- roles: one key, one role

VERIFIER_KEY = "verifier-key-for-tests-only"
COMMAND_KEY = "command-key-for-tests-only"


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_command_keys_are_configured_as_digests_only() -> None:
    RouteSettings(command_keys={"desk-1": sha256_hex(COMMAND_KEY)})
    with pytest.raises(ValidationError):  # the key itself is refused: only its digest is kept
        RouteSettings(command_keys={"desk-1": COMMAND_KEY})


def test_a_command_key_opens_the_desk_and_nothing_else() -> None:
    keys = KeyDigests({"desk-1": sha256_hex(COMMAND_KEY)})
    assert keys.find(COMMAND_KEY) == "desk-1"
    assert keys.find(VERIFIER_KEY) is None
    assert keys.find(sha256_hex(COMMAND_KEY)) is None  # the stored digest is not a key
    assert keys.find("") is None
    assert keys.find(None) is None


async def status_of(app: Any, method: str, path: str, headers: dict[str, str]) -> int:
    """Status of one call without the app's lifespan: refusals never reach Kafka or the DB."""
    transport = httpx.ASGITransport(app=app)
    body = {"decision": "verify"} if path.endswith("/decision") else None
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(method, path, headers=headers, json=body)
        return response.status_code


async def test_a_verifier_key_is_not_a_command_key_and_vice_versa() -> None:
    route = build_route(
        RouteSettings(command_keys={"desk-1": sha256_hex(COMMAND_KEY)}), create_topics=False
    )
    verify = build_verify(
        VerifySettings(reviewer_keys={"verifier-1": VERIFIER_KEY}), create_topics=False
    )
    summary = ("GET", "/v1/command/summary")
    for headers in ({}, {"X-Command-Key": VERIFIER_KEY}, {"X-Verifier-Key": VERIFIER_KEY}):
        assert await status_of(route, *summary, headers) == 401
    for method, path in (
        ("GET", "/v1/review"),
        ("POST", "/v1/review/r-1/claim"),
        ("POST", "/v1/review/r-1/decision"),
    ):
        for headers in ({}, {"X-Verifier-Key": COMMAND_KEY}, {"X-Command-Key": COMMAND_KEY}):
            assert await status_of(verify, method, path, headers) == 401, (path, headers)
