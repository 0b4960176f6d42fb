"""The base of every event payload: registry by event type, shared field types, state fields.

A payload is the CloudEvent `data` of one event type. Payloads are frozen and ignore unknown fields,
so a consumer keeps working when a producer adds an optional field (the only change allowed within
one `.vN`; anything else is a new `.vN+1` type, enforced by `python -m forge_contracts.generate`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from forge_contracts.envelope import TYPE_PATTERN, EventEnvelope, service_of

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

Id = Annotated[str, Field(pattern=UUID_PATTERN, description="A UUID (v7 for ids Forge creates), lower case.")]
TenantId = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="The owning tenant's slug (a DNS label, so it can name a namespace or a Volcano queue).",
    ),
]
Actor = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"\S", description="A user id, or `service:<name>`.")
]
S3Uri = Annotated[
    str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", description="An S3 URI.")
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="A SHA-256 digest, hex, lower case.")]
Text = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]
Metrics = dict[str, float]

EVENT_TYPES: dict[str, type[EventPayload]] = {}
"""Every payload class by its event type, filled as the classes are defined."""


class UnknownEventType(LookupError):
    """No payload model is registered for an event type."""


class EventPayload(BaseModel):
    """The `data` of one Forge event type; subclasses set `event_type` and register themselves."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    aggregate_field: ClassVar[str]
    """The field holding the aggregate id: the CloudEvent subject and the Kafka key."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        event_type = cls.__dict__.get("event_type")
        if event_type is None:
            return  # an intermediate base (one per state machine), not an event type
        if not isinstance(event_type, str) or not _matches(event_type):
            raise TypeError(f"{cls.__name__}.event_type {event_type!r} is not a valid Forge event type")
        if (other := EVENT_TYPES.get(event_type)) is not None:
            raise TypeError(
                f"event type {event_type!r} is taken by {other.__qualname__}, not {cls.__qualname__}"
            )
        EVENT_TYPES[event_type] = cls

    @property
    def aggregate_id(self) -> str:
        """The aggregate id: the CloudEvent subject and the Kafka message key."""
        return str(getattr(self, self.aggregate_field))

    @property
    def tenant(self) -> str:
        """The owning tenant (the CloudEvent `tenantid` extension)."""
        return str(getattr(self, "tenant_id", ""))  # declared by every per-machine base

    def to_envelope(self, *, sequence: int, traceparent: str | None = None) -> EventEnvelope:
        """This payload as a CloudEvent of its type, keyed by its aggregate id, for the outbox."""
        return EventEnvelope.for_service(
            service_of(self.event_type),
            self.event_type,
            subject=self.aggregate_id,
            tenant=self.tenant,
            sequence=sequence,
            data=self.model_dump(mode="json"),
            traceparent=traceparent,
        )

    @classmethod
    def from_envelope(cls, event: EventEnvelope) -> Self:
        """The payload of `event`, which must be of this class's type."""
        if event.type != cls.event_type:
            raise ValueError(f"{cls.__name__} parses {cls.event_type!r}, not {event.type!r}")
        return cls.model_validate(event.data)


def _matches(event_type: str) -> bool:
    return re.fullmatch(TYPE_PATTERN, event_type) is not None


class EntityEvent(EventPayload):
    """What every event of a state machine carries: the tenant, when it happened and who did it."""

    tenant_id: TenantId = Field(description="The owning tenant.")
    occurred_at: AwareDatetime = Field(description="When it happened (timezone-aware, UTC by convention).")
    actor: Actor | None = Field(default=None, description="Who did it; absent for the platform's own moves.")


class ResourceRequest(BaseModel):
    """Compute for one workload: per replica, and how many replicas must run together (the gang)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cpu_cores: float = Field(gt=0, description="CPU cores per replica.")
    memory_bytes: int = Field(gt=0, description="Memory per replica.")
    accelerator: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$",
        description="Accelerator resource name, e.g. `nvidia.com/gpu` or `huawei.com/Ascend910`.",
    )
    accelerator_count: int = Field(default=0, ge=0, description="Accelerators per replica.")
    replicas: int = Field(default=1, ge=1, description="Replicas that must be placed together (gang size).")


def parse_payload(event_type: str, data: dict[str, Any]) -> EventPayload:
    """Validate `data` as the payload of `event_type`; raises UnknownEventType or a ValidationError."""
    try:
        model = EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(f"no payload model for event type {event_type!r}") from None
    return model.model_validate(data)


def before() -> Any:
    """The `from_state` field of a transition payload (annotate it with the transition's source states)."""
    return Field(description="The state the entity left.")


def after(state: str) -> Any:
    """The `to_state` field of a transition payload: always the transition's target state."""
    return Field(default=state, description="The state the entity is in now.")


def example(*payloads: dict[str, Any]) -> ConfigDict:
    """A model config carrying example payloads (they appear in the JSON Schemas and in docs/events.md)."""
    return ConfigDict(json_schema_extra={"examples": list(payloads)})


__all__ = [
    "EVENT_TYPES",
    "Actor",
    "EntityEvent",
    "EventPayload",
    "Id",
    "Metrics",
    "ResourceRequest",
    "S3Uri",
    "Sha256",
    "TenantId",
    "Text",
    "UnknownEventType",
    "after",
    "before",
    "example",
    "parse_payload",
]
