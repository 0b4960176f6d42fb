"""The audit entries the scheduler keeps (one row per `forge.audit.entry.recorded.v1` event)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entries"

    id: str = Field(primary_key=True)
    kind: str
    tenant_id: str = Field(index=True)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    service: str
    actor: str = Field(index=True)
    actor_kind: str
    action: str
    resource_type: str
    resource_id: str = Field(index=True)
    project_id: str | None = None
    outcome: str
    status_code: int | None = None
    request_id: str | None = None
    trace_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
