"""The event envelope: CloudEvents 1.0 with Forge's extensions, and its Kafka binding.

Every Forge event is a CloudEvent:
- `id` (UUIDv7), `source` (`/forge/<service>`), `type` (`forge.<service>.<entity>.<event>.v<N>`),
  `subject` (the aggregate id), `time` (UTC), `datacontenttype` (`application/json`), `data`;
- extensions: `tenantid` (the owning tenant), `traceparent` (W3C trace context, the CloudEvents
  distributed-tracing extension) and `sequence` (the aggregate's sequence number, 1, 2, 3, ...; an
  integer, so a consumer can tell a stale or repeated event of the same aggregate).

On Kafka we use the CloudEvents Kafka protocol binding in **binary mode**: the message value is the
JSON `data`; every attribute is a header `ce_<name>` (UTF-8); `content-type` carries
`datacontenttype`; the message key is the aggregate id (the `partitionkey` extension), so one
aggregate's events stay in order on one partition. We also write the plain `traceparent` header
that OpenTelemetry's Kafka instrumentations read. The topic is `forge.<service>.events`.
"""

from __future__ import annotations

import json
import os
import time as _time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SPEC_VERSION: Literal["1.0"] = "1.0"
CONTENT_TYPE: Literal["application/json"] = "application/json"
TYPE_PATTERN = r"^forge\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]*$"


class InvalidEvent(ValueError):
    """A Kafka message is not a well-formed Forge CloudEvent."""


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort by creation time."""
    unix_ms = _time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 random bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def topic_for(service: str) -> str:
    """The Kafka topic a service publishes its events to."""
    return f"forge.{service}.events"


def service_of(event_type: str) -> str:
    """The publishing service of an event type (`forge.dataset.version.published.v1` -> `dataset`)."""
    return event_type.split(".")[1]


class EventEnvelope(BaseModel):
    """A Forge event as a CloudEvent 1.0 with the `tenantid`, `traceparent` and `sequence` extensions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str = Field(default_factory=uuid7, min_length=1)
    source: str = Field(min_length=1, description="`/forge/<service>`")
    type: str = Field(pattern=TYPE_PATTERN, description="`forge.<service>.<entity>.<event>.v<N>`")
    subject: str = Field(min_length=1, description="the aggregate id; also the Kafka key")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = CONTENT_TYPE
    tenantid: str = Field(min_length=1)
    traceparent: str | None = None
    sequence: int = Field(ge=1, description="the aggregate's sequence number, from 1")
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone")
        return value.astimezone(UTC)

    @property
    def service(self) -> str:
        return service_of(self.type)

    @property
    def topic(self) -> str:
        return topic_for(self.service)

    @classmethod
    def for_service(
        cls,
        service: str,
        event_type: str,
        *,
        subject: str,
        tenant: str,
        sequence: int,
        data: Mapping[str, Any],
        traceparent: str | None = None,
    ) -> EventEnvelope:
        """Build an event published by `service` (source `/forge/<service>`)."""
        if service_of(event_type) != service:
            raise ValueError(f"event type {event_type!r} does not belong to service {service!r}")
        return cls(
            source=f"/forge/{service}",
            type=event_type,
            subject=subject,
            tenantid=tenant,
            sequence=sequence,
            data=dict(data),
            traceparent=traceparent,
        )


@dataclass(frozen=True)
class KafkaRecord:
    """What goes on the wire: topic, key, value and headers of one Kafka message."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "tenantid",
    "traceparent",
    "sequence",
)


def to_kafka(event: EventEnvelope) -> KafkaRecord:
    """The CloudEvents Kafka binding, binary mode (see the module docstring)."""
    headers: list[tuple[str, bytes]] = [("content-type", CONTENT_TYPE.encode())]
    for name in _ATTRIBUTES:
        value = getattr(event, name)
        if value is None:
            continue
        text = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value)
        headers.append((f"ce_{name}", text.encode()))
    headers.append(("ce_partitionkey", event.subject.encode()))
    if event.traceparent:
        headers.append(("traceparent", event.traceparent.encode()))
    value = json.dumps(event.data, separators=(",", ":"), sort_keys=True, default=str).encode()
    return KafkaRecord(topic=event.topic, key=event.subject.encode(), value=value, headers=headers)


def from_kafka(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes], value: bytes | None
) -> EventEnvelope:
    """Parse a binary-mode CloudEvent from Kafka headers and value; raises InvalidEvent."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    attributes: dict[str, Any] = {}
    for name, raw in pairs:
        if name.startswith("ce_") and name != "ce_partitionkey":
            attributes[name[3:]] = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
    if "specversion" not in attributes:
        raise InvalidEvent("not a CloudEvent: no ce_specversion header")
    try:
        data = json.loads(value) if value else {}
    except json.JSONDecodeError as error:
        raise InvalidEvent(f"event data is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise InvalidEvent("event data must be a JSON object")
    try:
        return EventEnvelope(**attributes, data=data)
    except ValidationError as error:
        raise InvalidEvent(f"malformed CloudEvent: {error}") from error
