"""Storing, querying and expiring audit entries."""

from __future__ import annotations

from datetime import datetime, timedelta

from forge_contracts.envelope import EventEnvelope
from forge_contracts.events.audit import AuditEntryRecorded
from forge_kit.db import Database
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_scheduler.audit.tables import AuditEntry
from forge_scheduler.domain import utc_now


async def on_audit_event(event: EventEnvelope, session: AsyncSession) -> None:
    """Keep one audit entry (the inbox makes a redelivered one a no-op; the id makes a copy one too)."""
    if event.type != AuditEntryRecorded.event_type:
        return
    entry = AuditEntryRecorded.from_envelope(event)
    row = entry.model_dump()
    row["id"] = row.pop("entry_id")
    await session.exec(insert(AuditEntry).values(**row).on_conflict_do_nothing())  # type: ignore[call-overload]


async def entries(
    db: Database,
    tenant_id: str,
    *,
    actor: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """A tenant's entries, newest first, filtered; `before` (an entry id) pages further back."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    for column, value in (
        (AuditEntry.actor, actor),
        (AuditEntry.resource_type, resource_type),
        (AuditEntry.resource_id, resource_id),
        (AuditEntry.action, action),
        (AuditEntry.outcome, outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(col(AuditEntry.occurred_at) >= since)
    if until is not None:
        query = query.where(col(AuditEntry.occurred_at) < until)
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    query = query.order_by(col(AuditEntry.occurred_at).desc(), col(AuditEntry.id).desc()).limit(limit)
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def expire(db: Database, retention_days: int, now: datetime | None = None) -> int:
    """Delete entries older than the retention period; returns how many."""
    cutoff = (now or utc_now()) - timedelta(days=retention_days)
    async with db.transaction() as session:
        result = await session.exec(  # type: ignore[call-overload]
            delete(AuditEntry).where(col(AuditEntry.occurred_at) < cutoff)
        )
        return int(result.rowcount or 0)
