"""The audit trail (MT-5): one entry per state change or state-changing request, from every service,
on one topic (`forge.audit.events`), keyed by the resource so one resource's entries stay in order.

Two kinds of entries:
- `change`: a service changed state (every event it publishes through its outbox, in the same
  transaction: a change is audited if and only if it happened). `action` is the event type.
- `request`: a signed-in caller asked for a change (POST/PUT/PATCH/DELETE), with its outcome:
  `succeeded`, `denied` (401/403/404 on the caller's reach) or `failed` (other 4xx/5xx). `action` is
  `<METHOD> <route template>`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from forge_contracts.events.base import Actor, EventPayload, Id, example

PLATFORM_TENANT = "platform"
"""The tenant of entries that belong to no tenant (e.g. a platform admin's sign-in-wide actions)."""


class AuditEntryRecorded(EventPayload):
    """Who did what to which resource, where, when, and how it ended."""

    event_type: ClassVar[str] = "forge.audit.entry.recorded.v1"
    aggregate_field: ClassVar[str] = "resource_id"
    model_config = example(
        {
            "entry_id": "01956a01-0000-7000-8000-0000000a0d17",
            "kind": "change",
            "tenant_id": "acme",
            "occurred_at": "2025-03-03T12:00:05Z",
            "service": "registry",
            "actor": "carol",
            "actor_kind": "user",
            "action": "forge.registry.version.release_overridden.v1",
            "resource_type": "version",
            "resource_id": "01956a80-5555-7666-8777-888899990000",
            "outcome": "succeeded",
            "request_id": "6f1c2b8e-3d0a-4d7e-9b1a-2c3d4e5f6a7b",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "details": {"reason": "known-good on the manual review set"},
        }
    )

    entry_id: Id = Field(description="The entry's own id.")
    kind: Literal["change", "request"] = Field(description="A state change, or a caller's request.")
    tenant_id: str = Field(
        min_length=1, max_length=63, description=f"The tenant it happened in (`{PLATFORM_TENANT}` for none)."
    )
    occurred_at: AwareDatetime = Field(description="When it happened (timezone-aware, UTC).")
    service: str = Field(min_length=1, max_length=64, description="The service that recorded it.")
    actor: Actor = Field(description="The user (also the user a service acted for), or `service:<name>`.")
    actor_kind: Literal["user", "service", "platform"] = Field(
        description="`platform` for the platform's own moves (no user, no service identity behind them)."
    )
    action: str = Field(
        min_length=1,
        max_length=300,
        description="The event type of a change; `<METHOD> <route>` of a request.",
    )
    resource_type: str = Field(
        min_length=1,
        max_length=64,
        description="The entity of a change (`version`), the route's first segment.",
    )
    resource_id: str = Field(
        min_length=1, max_length=300, description="The aggregate id, or the request path."
    )
    project_id: str | None = Field(
        default=None, max_length=64, description="The project, when the change names one."
    )
    outcome: Literal["succeeded", "denied", "failed"] = Field(
        description="`denied`: 401/403/404 on the caller's reach; `failed`: any other error."
    )
    status_code: int | None = Field(default=None, ge=100, le=599, description="Of a request entry.")
    request_id: str | None = Field(default=None, max_length=128, description="The request's `x-request-id`.")
    trace_id: str | None = Field(default=None, max_length=64, description="The OpenTelemetry trace id.")
    details: dict[str, Any] = Field(
        default_factory=dict, description="What else the change said (its event data)."
    )

    @property
    def tenant(self) -> str:
        return self.tenant_id
