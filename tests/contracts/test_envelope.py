"""The CloudEvents envelope and its Kafka binary-mode binding; UUIDv7 ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from forge_contracts import envelope
from forge_contracts.envelope import EventEnvelope, InvalidEvent, from_kafka, to_kafka, uuid7
from hypothesis import given
from hypothesis import strategies as st

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _event(**changes: Any) -> EventEnvelope:
    return EventEnvelope.for_service(
        "training",
        "forge.training.job.started.v1",
        subject="01956a00-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
        tenant="acme",
        sequence=2,
        data={"backend": "local", "attempt": 1},
        **changes,
    )


@pytest.mark.parametrize("traceparent", [TRACEPARENT, None], ids=["traced", "untraced"])
def test_an_event_survives_the_kafka_round_trip(traceparent: str | None) -> None:
    event = _event(traceparent=traceparent)
    record = to_kafka(event)

    assert from_kafka(record.headers, record.value) == event


def test_headers_can_be_given_as_a_mapping() -> None:
    event = _event()
    record = to_kafka(event)

    assert from_kafka(dict(record.headers), record.value) == event


def test_the_record_is_keyed_by_the_aggregate_on_the_service_topic() -> None:
    event = _event(traceparent=TRACEPARENT)
    record = to_kafka(event)
    headers = dict(record.headers)

    assert record.topic == "forge.training.events"
    assert record.key == event.subject.encode() == headers["ce_partitionkey"]
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"] == headers["ce_traceparent"] == TRACEPARENT.encode()
    assert headers["ce_sequence"] == b"2"


def test_a_message_without_ce_specversion_is_not_an_event() -> None:
    record = to_kafka(_event())
    headers = [(name, value) for name, value in record.headers if name != "ce_specversion"]

    with pytest.raises(InvalidEvent, match="ce_specversion"):
        from_kafka(headers, record.value)


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe"], ids=["broken", "binary"])
def test_a_message_whose_value_is_not_json_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidEvent):
        from_kafka(to_kafka(_event()).headers, value)


def test_a_message_whose_value_is_not_a_json_object_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="object"):
        from_kafka(to_kafka(_event()).headers, b"[1, 2]")


def test_a_message_with_a_malformed_attribute_is_refused() -> None:
    headers = [(n, b"zero" if n == "ce_sequence" else v) for n, v in to_kafka(_event()).headers]

    with pytest.raises(InvalidEvent, match="malformed"):
        from_kafka(headers, b"{}")


def test_event_time_is_normalised_to_utc() -> None:
    event = _event().model_copy(update={"time": None})
    local = datetime(2025, 3, 3, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    timed = EventEnvelope.model_validate({**event.model_dump(), "time": local})

    assert timed.time == datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def test_an_event_of_another_service_is_refused() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        EventEnvelope.for_service(
            "dataset", "forge.training.job.started.v1", subject="x", tenant="acme", sequence=1, data={}
        )


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


@given(
    subject=_TEXT,
    tenant=_TEXT,
    sequence=st.integers(min_value=1, max_value=2**53),
    data=st.dictionaries(_TEXT, _JSON, max_size=6),
    time=st.datetimes(timezones=st.just(UTC)),
)
def test_any_event_survives_the_kafka_round_trip(
    subject: str, tenant: str, sequence: int, data: dict[str, Any], time: datetime
) -> None:
    event = EventEnvelope.for_service(
        "registry",
        "forge.registry.version.released.v1",
        subject=subject,
        tenant=tenant,
        sequence=sequence,
        data=data,
    ).model_copy(update={"time": time})
    record = to_kafka(event)

    assert from_kafka(record.headers, record.value) == event


def test_uuid7_ids_sort_by_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(1_700_000_000_000, 1_700_000_000_000 + 50))
    monkeypatch.setattr(envelope, "_time", SimpleNamespace(time_ns=lambda: next(clock) * 1_000_000))

    ids = [uuid7() for _ in range(50)]

    assert sorted(ids) == ids
    assert len(set(ids)) == 50


def test_uuid7_ids_are_version_7_and_carry_their_creation_millisecond() -> None:
    before = datetime.now(UTC)
    parsed = uuid.UUID(uuid7())
    after = datetime.now(UTC)

    created = datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before - timedelta(milliseconds=1) <= created <= after
