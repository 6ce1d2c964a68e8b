"""Field schemas of the custom resources the Helm chart renders, written from the published
CRDs (the openAPIV3Schema of their storage version) for the fields the chart uses:

- KEDA v2.20.2, keda.sh/v1alpha1 ScaledObject and TriggerAuthentication:
  https://github.com/kedacore/keda/blob/v2.20.2/config/crd/bases/keda.sh_scaledobjects.yaml
  https://github.com/kedacore/keda/blob/v2.20.2/config/crd/bases/keda.sh_triggerauthentications.yaml
- Strimzi 1.2.0, kafka.strimzi.io/v1 KafkaTopic and KafkaUser:
  https://github.com/strimzi/strimzi-kafka-operator/blob/1.2.0/install/cluster-operator/043-Crd-kafkatopic.yaml
  https://github.com/strimzi/strimzi-kafka-operator/blob/1.2.0/install/cluster-operator/044-Crd-kafkauser.yaml

Where a published object lists its properties, the schema here allows only those
(``additionalProperties: false``): the API server would silently prune a misspelt field, this
check refuses it. Types, enums, minimums and required fields are the CRDs'.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_INT0 = {"type": "integer", "minimum": 0}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
    }


_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"minLength": 1}}}


def _resource(api: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": {"const": api},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


SCALED_OBJECT = _resource(
    "keda.sh/v1alpha1",
    "ScaledObject",
    _obj(
        {
            "advanced": {"type": "object"},
            "cooldownPeriod": _INT0,
            "fallback": {"type": "object"},
            "idleReplicaCount": _INT0,
            "initialCooldownPeriod": _INT0,
            "maxReplicaCount": _INT0,
            "minReplicaCount": _INT0,
            "pollingInterval": _INT0,
            "scaleTargetRef": _obj(
                {
                    "apiVersion": _STR,
                    "envSourceContainerName": _STR,
                    "kind": _STR,
                    "name": {"type": "string", "minLength": 1},
                },
                ("name",),
            ),
            "triggers": {
                "type": "array",
                "items": _obj(
                    {
                        "authenticationRef": _obj({"kind": _STR, "name": _STR}, ("name",)),
                        # every metadata value is a string
                        "metadata": {"type": "object", "additionalProperties": _STR},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "name": _STR,
                        "type": _STR,
                        "useCachedMetrics": {"type": "boolean"},
                    },
                    ("metadata", "type"),
                ),
            },
        },
        ("scaleTargetRef", "triggers"),
    ),
)

_SECRET_TARGET = _obj({"key": _STR, "name": _STR, "parameter": _STR}, ("key", "name", "parameter"))
TRIGGER_AUTHENTICATION = _resource(
    "keda.sh/v1alpha1",
    "TriggerAuthentication",
    _obj(
        {
            name: {"type": "object"}
            for name in (
                "awsSecretManager",
                "azureKeyVault",
                "boundServiceAccountToken",
                "filePath",
                "gcpSecretManager",
                "hashiCorpVault",
                "oauth2",
                "podIdentity",
            )
        }
        | {
            "configMapTargetRef": {"type": "array"},
            "env": {"type": "array"},
            "secretTargetRef": {"type": "array", "items": _SECRET_TARGET},
        }
    ),
)

KAFKA_TOPIC = _resource(
    "kafka.strimzi.io/v1",
    "KafkaTopic",
    _obj(
        {
            "topicName": _STR,
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object"},
        }
    ),
)

_OPERATIONS = [
    "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "AlterConfigs",
    "DescribeConfigs", "IdempotentWrite", "All",
]  # fmt: skip
_ACL = _obj(
    {
        "type": {"enum": ["allow", "deny"]},
        "resource": _obj(
            {
                "name": _STR,
                "patternType": {"enum": ["literal", "prefix"]},
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
            },
            ("type",),
        ),
        "host": _STR,
        "operations": {"type": "array", "items": {"enum": _OPERATIONS}},
    },
    ("resource", "operations"),
)
KAFKA_USER = _resource(
    "kafka.strimzi.io/v1",
    "KafkaUser",
    _obj(
        {
            "authentication": _obj(
                {
                    "password": {"type": "object"},
                    "renewalDays": {"type": "integer", "minimum": 1},
                    "type": {"enum": ["tls", "tls-external", "scram-sha-512"]},
                    "validityDays": {"type": "integer", "minimum": 1},
                },
                ("type",),
            ),
            "authorization": _obj(
                {"acls": {"type": "array", "items": _ACL}, "type": {"enum": ["simple"]}},
                ("acls", "type"),
            ),
            "quotas": {"type": "object"},
            "template": {"type": "object"},
        }
    ),
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": SCALED_OBJECT,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION,
    "KafkaTopic": KAFKA_TOPIC,
    "KafkaUser": KAFKA_USER,
}

# The Kafka scaler's metadata and authentication parameters (KEDA v2.20.2,
# https://github.com/kedacore/keda/blob/v2.20.2/pkg/scalers/kafka_scaler.go): an unknown key
# is ignored by KEDA, so it is refused here; every value is a string.
_BOOL = {"enum": ["true", "false"]}
KAFKA_TRIGGER_METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["bootstrapServers", "consumerGroup"],
    "additionalProperties": False,
    "properties": {
        "activationLagThreshold": {"pattern": "^[0-9]+$"},
        "allowIdleConsumers": _BOOL,
        "awsRegion": _STR,
        "bootstrapServers": {"type": "string", "minLength": 1},
        "consumerGroup": {"type": "string", "minLength": 1},
        "ensureEvenDistributionOfPartitions": _BOOL,
        "excludePersistentLag": _BOOL,
        "lagThreshold": {"pattern": "^[0-9]+$"},
        "limitToPartitionsWithLag": _BOOL,
        "offsetResetPolicy": {"enum": ["latest", "earliest"]},
        "partitionLimitation": _STR,
        "sasl": {
            "enum": ["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]
        },
        "saslTokenProvider": {"enum": ["bearer", "aws_msk_iam"]},
        "scaleToZeroOnInvalidOffset": _BOOL,
        "tls": {"enum": ["enable", "disable"]},
        "topic": _STR,
        "unsafeSsl": _BOOL,
        "version": _STR,
    },
}
KAFKA_AUTH_PARAMETERS = frozenset(
    {
        "ca", "cert", "key", "keyPassword", "username", "password", "sasl", "tls",
        "kerberosConfig", "kerberosDisableFAST", "kerberosServiceName", "keytab", "realm",
        "oauthExtensions", "oauthTokenEndpointUri", "scopes", "saslTokenProvider",
    }
)  # fmt: skip
