"""The audit trail, written once in the kit so no service can forget it (MT-5).

- Every event a service publishes through its outbox is also recorded as an audit `change` entry, in the
  same transaction (`outbox.publish` calls `change_entry`): a change is audited exactly when it commits.
- Every state-changing request (POST/PUT/PATCH/DELETE) of a signed-in caller is recorded as a `request`
  entry with its outcome (`ServiceRuntime` installs `record_request` on the HTTP app), so refused and
  failed attempts are in the trail too.

Entries go through the service's outbox onto one topic, `forge.audit.events`; the scheduler keeps them
(with retention) and serves them to tenant admins (`GET /audit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forge_contracts.envelope import EventEnvelope, uuid7
from forge_contracts.events.audit import PLATFORM_TENANT, AuditEntryRecorded
from opentelemetry import trace

from forge_kit.auth import Principal

AUDIT_EVENT = AuditEntryRecorded.event_type
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DETAIL_LIMIT = 4000
"""At most this many characters of an event's data are copied into its entry."""


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def _request_id() -> str | None:
    from forge_kit.http import current_request_id  # the HTTP edge owns the request id

    return current_request_id()


def _envelope(entry: AuditEntryRecorded, service: str, traceparent: str | None) -> EventEnvelope:
    return EventEnvelope(
        source=f"/forge/{service}",
        type=AUDIT_EVENT,
        subject=entry.resource_id,
        tenantid=entry.tenant_id,
        sequence=1,
        data=entry.model_dump(mode="json"),
        traceparent=traceparent,
    )


def _details(data: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in data.items() if k not in ("tenant_id", "occurred_at", "actor")}
    if len(repr(kept)) > _DETAIL_LIMIT:
        return {"truncated": True, "fields": sorted(kept)[:50]}
    return kept


def change_entry(event: EventEnvelope) -> EventEnvelope | None:
    """The audit entry of a published event (None for an audit entry itself)."""
    if event.type == AUDIT_EVENT:
        return None
    parts = event.type.split(".")  # forge.<service>.<entity>.<event>.vN
    service, entity = parts[1], parts[2]
    actor = event.data.get("actor")
    if not actor:
        actor, kind = f"service:{service}", "platform"
    else:
        kind = "service" if str(actor).startswith("service:") else "user"
    entry = AuditEntryRecorded(
        entry_id=uuid7(),
        kind="change",
        tenant_id=event.tenantid,
        occurred_at=event.time,
        service=service,
        actor=str(actor),
        actor_kind=kind,  # type: ignore[arg-type]
        action=event.type,
        resource_type=entity,
        resource_id=event.subject,
        project_id=event.data.get("project_id") if isinstance(event.data.get("project_id"), str) else None,
        outcome="succeeded",
        request_id=_request_id(),
        trace_id=_trace_id(),
        details=_details(event.data),
    )
    return _envelope(entry, service, event.traceparent)


def request_entry(
    service: str,
    principal: Principal,
    *,
    method: str,
    route: str,
    path: str,
    status_code: int,
    request_id: str | None = None,
    traceparent: str | None = None,
) -> EventEnvelope:
    """The audit entry of a state-changing request and how it ended."""
    if status_code < 400:
        outcome = "succeeded"
    elif status_code in (401, 403, 404):
        outcome = "denied"
    else:
        outcome = "failed"
    entry = AuditEntryRecorded(
        entry_id=uuid7(),
        kind="request",
        tenant_id=principal.tenant or PLATFORM_TENANT,
        occurred_at=_now(),
        service=service,
        actor=principal.actor,
        actor_kind="service" if principal.is_service and not principal.on_behalf_of else "user",
        action=f"{method} {route}",
        resource_type=route.strip("/").split("/")[0] or "root",
        resource_id=path[:300],
        outcome=outcome,  # type: ignore[arg-type]
        status_code=status_code,
        request_id=request_id or _request_id(),
        trace_id=_trace_id(),
    )
    return _envelope(entry, service, traceparent)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
