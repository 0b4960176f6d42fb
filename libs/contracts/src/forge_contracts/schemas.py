"""JSON Schemas of the event payloads, in catalogue order, as checked in under docs/events/schemas/."""

from __future__ import annotations

from typing import Any

from forge_contracts.envelope import service_of, topic_for
from forge_contracts.events import EVENT_TYPES, EventPayload
from forge_contracts.state_machines import MACHINES

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SERVICES = ("dataset", "labeling", "training", "registry", "scheduler", "delivery")


def payload_models() -> list[type[EventPayload]]:
    """Every payload model: by service, then by state machine, creation event first, then transitions."""
    ordered = [EVENT_TYPES[kind] for machine in MACHINES.values() for kind in machine.event_types()]
    ordered += [model for kind, model in sorted(EVENT_TYPES.items()) if model not in ordered]
    rank = {service: index for index, service in enumerate(SERVICES)}
    return sorted(ordered, key=lambda model: rank.get(service_of(model.event_type), len(SERVICES)))


def topics() -> dict[str, list[type[EventPayload]]]:
    """The payload models published on each topic (`forge.<service>.events`), in catalogue order."""
    grouped: dict[str, list[type[EventPayload]]] = {}
    for model in payload_models():
        grouped.setdefault(topic_for(service_of(model.event_type)), []).append(model)
    return grouped


def event_schema(model: type[EventPayload], ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one payload model, with Forge's annotations."""
    schema = model.model_json_schema(ref_template=ref_template)
    return {
        "$schema": DIALECT,
        "$comment": "Generated from forge_contracts by `make schemas`; do not edit.",
        "x-forge-event-type": model.event_type,
        "x-forge-topic": topic_for(service_of(model.event_type)),
        "x-forge-key": model.aggregate_field,
        **schema,
    }


def examples(model: type[EventPayload]) -> list[EventPayload]:
    """The model's documented examples, validated (so a stale example fails generation and tests)."""
    extra = model.model_config.get("json_schema_extra")
    listed = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(listed, list):
        return []
    return [model.model_validate(item) for item in listed if isinstance(item, dict)]


def summary(model: type[EventPayload]) -> str:
    """The first paragraph of a model's docstring, on one line."""
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split())
