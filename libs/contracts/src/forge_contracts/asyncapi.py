"""The AsyncAPI 3.0 document of Forge's topics, built from the payload models."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml

from forge_contracts.envelope import EventEnvelope, service_of, to_kafka
from forge_contracts.events import EventPayload
from forge_contracts.schemas import event_schema, examples, summary, topics

KAFKA_BINDING = "0.5.0"
_COMPONENT = "#/components/schemas/{model}"
_EXAMPLE_EVENT_ID = "01956c00-0000-7000-8000-0000000e0001"

HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka protocol binding, binary mode: every attribute is a `ce_` header.",
    "required": [
        "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time",
        "ce_tenantid", "ce_sequence", "ce_partitionkey", "content-type",
    ],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0", "description": "CloudEvents spec version."},
        "ce_id": {"type": "string", "description": "Event id (UUIDv7); dedupe on it."},
        "ce_source": {"type": "string", "description": "`/forge/<service>`."},
        "ce_type": {"type": "string", "description": "`forge.<service>.<entity>.<event>.v<N>`."},
        "ce_subject": {"type": "string", "description": "The aggregate id (also the Kafka key)."},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it was produced (UTC)."},
        "ce_tenantid": {"type": "string", "description": "The owning tenant."},
        "ce_sequence": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": "The aggregate's sequence number: 1, 2, 3, ...",
        },
        "ce_partitionkey": {"type": "string", "description": "Partitioning extension: the Kafka key."},
        "ce_traceparent": {"type": "string", "description": "W3C trace context (distributed tracing)."},
        "content-type": {"type": "string", "const": "application/json", "description": "The media type."},
        "traceparent": {"type": "string", "description": "W3C trace context, for OpenTelemetry."},
    },
}  # fmt: skip


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 3.0: one channel per topic, one message per event type, one send operation per service."""
    schemas: dict[str, Any] = {"CloudEventHeaders": HEADERS}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, models in topics().items():
        service = service_of(models[0].event_type)
        for model in models:
            messages[model.__name__] = _message(model, schemas)
        refs = {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"} for model in models}
        channels[service] = {
            "address": topic,
            "title": topic,
            "description": f"Events of the {service} service's state machines; key = aggregate id.",
            "messages": refs,
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
        }
        operations[f"publish_{service}_events"] = {
            "action": "send",
            "summary": f"The {service} service publishes (through its transactional outbox).",
            "channel": {"$ref": f"#/channels/{service}"},
            "messages": [{"$ref": f"#/channels/{service}/messages/{name}"} for name in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Forge events",
            "version": _version(),
            "description": "State-machine events of the Forge services, as CloudEvents on Kafka.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _message(model: type[EventPayload], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = event_schema(model, ref_template=_COMPONENT)
    for name, definition in schema.pop("$defs", {}).items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are named {name!r}")
    schema.pop("$schema")
    schema.pop("examples", None)  # the message carries them, with headers
    schemas[model.__name__] = schema
    service = service_of(model.event_type)
    headers = {
        "type": "object",
        "allOf": [
            {"$ref": "#/components/schemas/CloudEventHeaders"},
            {
                "properties": {
                    "ce_type": {"const": model.event_type},
                    "ce_source": {"const": f"/forge/{service}"},
                }
            },
        ],
    }
    return {
        "name": model.event_type,
        "title": model.__name__,
        "summary": summary(model),
        "contentType": "application/json",
        "headers": headers,
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": f"The aggregate id: the payload's `{model.aggregate_field}`.",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [_example(model, payload) for payload in examples(model)],
    }


def _example(model: type[EventPayload], payload: EventPayload) -> dict[str, Any]:
    time = getattr(payload, "occurred_at", None)
    envelope = payload.to_envelope(sequence=1 if "from_state" not in type(payload).model_fields else 2)
    envelope = EventEnvelope.model_validate(
        {**envelope.model_dump(), "id": _EXAMPLE_EVENT_ID, "time": time or envelope.time}
    )
    record = to_kafka(envelope)
    return {
        "name": f"{model.__name__}Example",
        "headers": {name: value.decode() for name, value in record.headers},
        "payload": payload.model_dump(mode="json"),
    }


def _version() -> str:
    try:
        return version("forge-contracts")
    except PackageNotFoundError:
        return "0.0.0"


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type hints
    """Safe YAML with multi-line strings as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(document: dict[str, Any]) -> str:
    """`document` as YAML, keys in insertion order."""
    return str(yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110))
