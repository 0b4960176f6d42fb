"""Event payloads: one model per event type, in step with the state machines, with valid examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, get_args

import pytest
from forge_contracts.envelope import from_kafka, to_kafka
from forge_contracts.events import (
    EVENT_TYPES,
    AuditEntryRecorded,
    BundleFile,
    DatasetAliasMoved,
    DatasetAliasRemoved,
    DatasetClearanceSet,
    DatasetGrantCreated,
    DatasetGrantRevoked,
    EventPayload,
    ModelDelivered,
    ModelVersionReleaseOverridden,
    TrainingJobSucceeded,
    UnknownEventType,
    parse_payload,
)
from forge_contracts.schemas import examples
from forge_contracts.state_machines import MACHINES, StateMachine, Transition
from pydantic import ValidationError

SUCCEEDED = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-03T12:00:00Z",
    "job_id": "01956a00-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
    "project_id": "01956900-aaaa-7bbb-8ccc-000000000001",
    "kind": "fine_tune",
    "from_state": "running",
    "model_uri": "s3://forge-models/acme/01956a00/final/",
    "metrics": {"eval_loss": 0.5},
    "duration_s": 60.0,
}
MACHINE_EVENTS = [
    (machine, kind, move)
    for machine in MACHINES.values()
    for kind, move in [
        (machine.created_event_type, None),
        *((m.event_type, m) for m in machine.transitions.values()),
    ]
]


def _all_payload_classes(base: type[EventPayload] = EventPayload) -> list[type[EventPayload]]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_all_payload_classes(sub)]
    return found


def test_every_transition_has_exactly_one_payload_model() -> None:
    classes = [cls for cls in _all_payload_classes() if "event_type" in cls.__dict__]

    for _, kind, _ in MACHINE_EVENTS:
        assert [cls.event_type for cls in classes].count(kind) == 1, kind
        assert EVENT_TYPES[kind].event_type == kind


def test_every_payload_model_belongs_to_a_state_machine() -> None:
    emitted = {kind for _, kind, _ in MACHINE_EVENTS}

    # Events that are no transition: the audit entry records the others (and requests); a dataset's
    # aliases are pointers at its versions, not an entity with states; nor are its grants (made, then
    # revoked) or a tenant's clearance (a setting).
    outside = {
        AuditEntryRecorded.event_type,
        DatasetAliasMoved.event_type,
        DatasetAliasRemoved.event_type,
        DatasetGrantCreated.event_type,
        DatasetGrantRevoked.event_type,
        DatasetClearanceSet.event_type,
    }
    assert set(EVENT_TYPES) - outside == emitted


@pytest.mark.parametrize(
    ("machine", "kind", "move"), MACHINE_EVENTS, ids=[kind for _, kind, _ in MACHINE_EVENTS]
)
def test_payload_states_match_the_state_machine(
    machine: StateMachine, kind: str, move: Transition | None
) -> None:
    fields = EVENT_TYPES[kind].model_fields

    if move is None:
        assert "from_state" not in fields
        assert get_args(fields["to_state"].annotation) == (machine.initial,)
    else:
        assert set(get_args(fields["from_state"].annotation)) == move.sources
        assert get_args(fields["to_state"].annotation) == (move.target,)
        assert set(move.requires) <= set(fields)


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_payload_is_documented_with_a_valid_example(kind: str) -> None:
    model = EVENT_TYPES[kind]

    assert model.__doc__ and model.__doc__.strip()
    assert examples(model), f"{model.__name__} has no example"
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_example_survives_a_trip_through_kafka(kind: str) -> None:
    for payload in examples(EVENT_TYPES[kind]):
        event = payload.to_envelope(sequence=3)
        received = from_kafka(to_kafka(event).headers, to_kafka(event).value)

        assert parse_payload(received.type, received.data) == payload


def test_a_second_model_for_an_event_type_is_refused() -> None:
    with pytest.raises(TypeError, match="is taken by"):

        class Duplicate(TrainingJobSucceeded):
            event_type: ClassVar[str] = "forge.training.job.succeeded.v1"

    assert EVENT_TYPES["forge.training.job.succeeded.v1"] is TrainingJobSucceeded


def test_an_event_type_must_follow_the_naming_convention() -> None:
    with pytest.raises(TypeError, match="not a valid"):

        class Misnamed(TrainingJobSucceeded):
            event_type: ClassVar[str] = "training.job.done"


def test_consumers_ignore_fields_they_do_not_know() -> None:
    payload = parse_payload("forge.training.job.succeeded.v1", {**SUCCEEDED, "added_in_a_later_release": 1})

    assert isinstance(payload, TrainingJobSucceeded)
    assert payload.model_uri == SUCCEEDED["model_uri"]


def test_parse_payload_refuses_an_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType):
        parse_payload("forge.training.job.exploded.v1", SUCCEEDED)


@pytest.mark.parametrize(
    "change",
    [
        {"model_uri": None},
        {"model_uri": "models/final"},
        {"job_id": "job-1"},
        {"from_state": "paused"},
        {"to_state": "failed"},
        {"occurred_at": "2025-03-03T12:00:00"},
        {"tenant_id": "Acme Corp"},
    ],
    ids=["missing-uri", "not-s3", "not-a-uuid", "wrong-source", "wrong-target", "naive-time", "bad-tenant"],
)
def test_parse_payload_refuses_invalid_data(change: dict[str, Any]) -> None:
    data = {key: value for key, value in {**SUCCEEDED, **change}.items() if value is not None}

    with pytest.raises(ValidationError):
        parse_payload("forge.training.job.succeeded.v1", data)


def test_payloads_are_immutable() -> None:
    payload = TrainingJobSucceeded.model_validate(SUCCEEDED)

    with pytest.raises(ValidationError):
        payload.model_uri = "s3://elsewhere/model"  # type: ignore[misc]


def test_a_training_result_carries_its_metrics_and_model() -> None:
    payload = TrainingJobSucceeded.model_validate(SUCCEEDED)

    assert payload.to_state == "succeeded"
    assert payload.metrics == {"eval_loss": 0.5}
    assert payload.occurred_at == datetime(2025, 3, 3, 12, tzinfo=UTC)


def test_the_delivered_event_carries_what_the_inference_platform_needs() -> None:
    required = set(ModelDelivered.model_json_schema()["required"])

    assert ModelDelivered.event_type == "forge.delivery.model.delivered.v1"
    assert {"model_version_id", "model_name", "model_version", "format", "bundle_uri", "files"} <= required
    assert set(BundleFile.model_json_schema()["required"]) == {"path", "sha256", "size_bytes"}


def test_a_delivery_without_files_is_refused() -> None:
    (example,) = examples(ModelDelivered)

    with pytest.raises(ValidationError):
        ModelDelivered.model_validate({**example.model_dump(), "files": []})


@pytest.mark.parametrize("path", ["/etc/passwd", "../secrets", "weights/../../x", "a//b", ""])
def test_a_bundle_file_cannot_point_outside_the_bundle(path: str) -> None:
    with pytest.raises(ValidationError):
        BundleFile(path=path, sha256="0" * 64, size_bytes=1)


def test_a_bundle_file_needs_a_real_sha256() -> None:
    with pytest.raises(ValidationError):
        BundleFile(path="model.safetensors", sha256="abc", size_bytes=1)


@pytest.mark.parametrize("missing", ["approved_by", "reason"])
def test_the_override_event_names_its_approver_and_reason(missing: str) -> None:
    (example,) = examples(ModelVersionReleaseOverridden)

    with pytest.raises(ValidationError):
        ModelVersionReleaseOverridden.model_validate({**example.model_dump(), missing: "  "})


def test_a_payload_becomes_a_cloud_event_keyed_by_its_aggregate() -> None:
    payload = TrainingJobSucceeded.model_validate(SUCCEEDED)

    event = payload.to_envelope(
        sequence=7, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )
    record = to_kafka(event)

    assert (event.type, event.source, event.subject) == (
        payload.event_type,
        "/forge/training",
        payload.job_id,
    )
    assert (event.tenantid, event.sequence) == ("acme", 7)
    assert (record.topic, record.key) == ("forge.training.events", payload.job_id.encode())
    assert TrainingJobSucceeded.from_envelope(event) == payload


def test_a_payload_refuses_an_envelope_of_another_type() -> None:
    (example,) = examples(ModelDelivered)

    with pytest.raises(ValueError, match="parses"):
        TrainingJobSucceeded.from_envelope(example.to_envelope(sequence=1))


def test_the_public_package_exports_every_payload() -> None:
    import forge_contracts.events as events

    assert {cls.__name__ for cls in EVENT_TYPES.values()} <= set(events.__all__)
