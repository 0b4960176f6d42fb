"""Tables of the labeling service's own database (all prefixed `labeling_`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _ts() -> Any:
    return Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))


class Template(SQLModel, table=True):
    """A reusable labeling tool configuration (LB-2): for now, text classification."""

    __tablename__ = "labeling_templates"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    name: str
    kind: str
    labels: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    text_field: str
    instructions: str | None = None
    created_by: str | None = None
    created_at: datetime = _ts()


class Project(SQLModel, table=True):
    """A labeling project: one template applied to every record of one published dataset version."""

    __tablename__ = "labeling_projects"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    name: str
    template_id: str
    dataset_id: str
    dataset_version_id: str
    dataset_version_number: int
    task_count: int = 0
    created_by: str | None = None
    created_at: datetime = _ts()


class Task(SQLModel, table=True):
    """One record to label (the `labeling_task` state machine's aggregate)."""

    __tablename__ = "labeling_tasks"
    __table_args__ = (
        Index("labeling_tasks_project_state", "project_id", "state"),
        UniqueConstraint("project_id", "position"),
    )

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    project_id: str
    position: int
    item_id: str
    record: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    state: str = "open"
    sequence: int = 0
    assignee: str | None = None
    annotation_id: str | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Annotation(SQLModel, table=True):
    """One submitted label for a task, and its review."""

    __tablename__ = "labeling_annotations"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    task_id: str = Field(index=True)
    label: str
    annotator: str
    lead_time_s: float | None = None
    review: str | None = None
    reviewer: str | None = None
    reason: str | None = None
    submitted_at: datetime = _ts()
    reviewed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Export(SQLModel, table=True):
    """One export of a project's accepted annotations to a new dataset version."""

    __tablename__ = "labeling_exports"
    __table_args__ = (UniqueConstraint("tenant", "project_id", "request_id"),)

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    project_id: str
    request_id: str
    format: str
    label_field: str
    state: str = "pending"
    record_count: int = 0
    bucket: str | None = None
    object_key: str | None = None
    dataset_version_id: str | None = None
    dataset_version_number: int | None = None
    error: str | None = None
    created_by: str | None = None
    created_at: datetime = _ts()
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
