"""Create the SCRAM users and ACLs of acls.toml through the Kafka Admin API, as the operator.

    python deploy/local/kafka/sasl/apply.py <acls.toml> <secrets dir>

Connects with the standard KAFKA_* variables (shared.settings: bootstrap, security protocol,
SASL mechanism and admin credentials, CA file), so the same step serves the local SASL broker
(deploy/local/kafka-sasl.sh) and a production cluster. Each principal's password is read from
``<secrets dir>/<name>.password`` (the local script generates them; production mounts them
from its secret store). Both requests are idempotent: running it again changes nothing.

aiokafka's admin client has no call for these two APIs (AlterUserScramCredentials,
CreateAcls), so this sends the protocol requests itself over aiokafka's connection. It replaces
one JVM per user and per ACL with Kafka's command-line tools (ConfigCommand, AclCommand), which
took minutes on a two-core machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from shared.lag import client_options
from shared.settings import ServiceSettings

SCRAM_SHA_512 = 2  # Kafka's ScramMechanism type
ITERATIONS = 8192
# Kafka's ACL enums (org.apache.kafka.common.{resource,acl}).
TOPIC, GROUP = 2, 3
LITERAL = 3
READ, WRITE = 3, 4
ALLOW = 3


class AlterUserScramCredentialsResponse_v0(Response):  # type: ignore[misc]  # noqa: N801
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # type: ignore[misc]  # noqa: N801
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest(Request[AlterUserScramCredentialsRequest_v0]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
        for name, password in self._users.items():
            salt = os.urandom(32)
            # SCRAM's Hi(): PBKDF2 with HMAC-SHA-512; the broker stores only derived keys.
            salted = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, ITERATIONS)
            upsertions.append((name, SCRAM_SHA_512, ITERATIONS, salt, salted, {}))
        return request_struct_class([], upsertions, {})


def load(path: Path) -> dict[str, dict[str, Any]]:
    principals: dict[str, dict[str, Any]] = tomllib.loads(path.read_text(encoding="utf-8"))[
        "principals"
    ]
    return principals


def bindings(principals: dict[str, dict[str, Any]]) -> list[tuple[int, str, str, int]]:
    """(resource type, resource name, principal, operation) for every ALLOW of the file."""
    out: list[tuple[int, str, str, int]] = []
    for name, entry in principals.items():
        principal = f"User:{name}"
        out += [(TOPIC, topic, principal, READ) for topic in entry.get("read", [])]
        out += [(GROUP, group, principal, READ) for group in entry.get("groups", [])]
        out += [(TOPIC, topic, principal, WRITE) for topic in entry.get("write", [])]
    return out


async def apply(acls: Path, secrets: Path) -> None:
    principals = load(acls)
    passwords = {
        name: (secrets / f"{name}.password").read_text(encoding="utf-8").strip()
        for name in principals
    }
    admin = AIOKafkaAdminClient(client_id="cityhelp-access", **client_options(ServiceSettings()))
    await admin.start()
    try:
        response: Any = await admin._send_request(AlterUserScramCredentialsRequest(passwords))
        failed = [(r[0], r[1], r[2]) for r in response.results if r[1] != 0]
        if failed:
            raise SystemExit(f"[access] creating SCRAM users failed: {failed}")
        print(f"[access] {len(passwords)} SCRAM-SHA-512 users: {', '.join(passwords)}")
        allowed = bindings(principals)
        for resource, name, principal, operation in allowed:
            request = CreateAclsRequest(resource, name, LITERAL, principal, "*", operation, ALLOW)
            result: Any = await admin._send_request(request)
            errors = [(e[0], e[1]) for e in result.creation_responses if e[0] != 0]
            if errors:
                raise SystemExit(f"[access] ACL {principal} {operation} {name}: {errors}")
        print(f"[access] {len(allowed)} ACLs (ALLOW, literal) for {len(principals)} principals")
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(apply(Path(sys.argv[1]), Path(sys.argv[2])))
