"""The audit API: a tenant's trail for its admins (and platform admins), filtered and paged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from forge_contracts.events.audit import PLATFORM_TENANT
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action
from forge_kit.runtime import Runtime
from pydantic import BaseModel

from forge_scheduler.audit import service
from forge_scheduler.audit.tables import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntryView(BaseModel):
    id: str
    kind: str
    tenant_id: str
    occurred_at: datetime
    service: str
    actor: str
    actor_kind: str
    action: str
    resource_type: str
    resource_id: str
    project_id: str | None
    outcome: str
    status_code: int | None
    request_id: str | None
    trace_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntryView]
    next_before: str | None = None


Filter = Annotated[str | None, Query(min_length=1, max_length=300)]


def _page(found: list[AuditEntry], limit: int) -> AuditPage:
    items = [AuditEntryView.model_validate(entry, from_attributes=True) for entry in found]
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)


async def _query(svc: Runtime, tenant_id: str, limit: int, **filters: Any) -> AuditPage:
    return _page(await service.entries(svc.db, tenant_id, limit=limit, **filters), limit)


@router.get("")
async def audit_trail(
    caller: Annotated[Principal, allow(Action.AUDIT_READ)],
    svc: Runtime,
    actor: Filter = None,
    resource_type: Filter = None,
    resource_id: Filter = None,
    action: Filter = None,
    outcome: Literal["succeeded", "denied", "failed"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Filter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Who did what in the tenant, newest first: every state change and every state-changing request
    (with its outcome) in every service. Page back with `before=<next_before>`."""
    return await _query(
        svc,
        caller.tenant_id,
        limit,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        before=before,
    )


@router.get("/platform")
async def platform_trail(
    caller: Annotated[Principal, allow(Action.PLATFORM_AUDIT_READ, tenant=False)],
    svc: Runtime,
    actor: Filter = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Filter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Entries outside any tenant (platform admins only)."""
    return await _query(svc, PLATFORM_TENANT, limit, actor=actor, since=since, until=until, before=before)
