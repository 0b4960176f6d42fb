"""The scheduler's own tables: tenants and their members (the directory), projects (with their quota)
and allocations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from forge_scheduler.domain import Resources

metadata = SQLModel.metadata


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class Tenant(SQLModel, table=True):
    """A tenant: created by a platform admin (directory), or recorded when a service names it first."""

    __tablename__ = "tenants"

    id: str = Field(primary_key=True)
    display_name: str | None = None
    created_by: str | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Membership(SQLModel, table=True):
    """A role of a user in a tenant, or in one project of it (`project_id`)."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "username",
            "project_id",
            "role",
            name="memberships_unique",
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: str = Field(primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", index=True)
    username: str = Field(index=True)
    project_id: str | None = Field(default=None, foreign_key="projects.id")
    role: str
    granted_by: str
    granted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Project(SQLModel, table=True):
    """A project inside a tenant; its quota is what its admitted allocations may hold together."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="projects_tenant_name"),)

    id: str = Field(primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", index=True)
    name: str
    description: str | None = None
    queue: str
    quota_cpu_millis: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    quota_memory_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    quota_accelerators: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    quota_updated_at: datetime | None = _ts()

    def quota(self) -> Resources:
        return Resources(self.quota_cpu_millis, self.quota_memory_bytes, dict(self.quota_accelerators))


class Allocation(SQLModel, table=True):
    """One workload's claim on its project's quota, following the `allocation` state machine."""

    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("tenant_id", "request_key", name="allocations_request_key"),)

    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    project_id: str = Field(foreign_key="projects.id", index=True)
    request_key: str | None = None
    request_digest: str | None = None  # SHA-256 of the request the key was first used with
    state: str
    sequence: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    priority: int
    gang_size: int
    cpu_millis: int = Field(sa_column=Column(BigInteger, nullable=False))
    memory_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    accelerators: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    workload_kind: str
    workload_id: str
    queue: str
    actor: str | None = None
    workload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    rejection_code: str | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    backend: str | None = None
    backend_ref: str | None = None
    log_dir: str | None = None
    exit_code: int | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    admitted_at: datetime | None = _ts()
    started_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()

    def per_worker(self) -> Resources:
        return Resources(self.cpu_millis, self.memory_bytes, dict(self.accelerators))


from forge_scheduler.audit.tables import AuditEntry  # noqa: E402  (the same metadata, for migrations)

__all__ = ["Allocation", "AuditEntry", "Membership", "Project", "Tenant", "metadata"]
