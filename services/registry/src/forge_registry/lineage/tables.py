"""The lineage graph's tables: nodes (a dataset version, a dataset task, a labeling project, a training
job, a base model, a model version, a delivery order), the edges between them, and the OpenLineage run
events waiting to be sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from forge_registry.tables import now


class LineageNode(SQLModel, table=True):
    __tablename__ = "lineage_nodes"

    kind: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    tenant_id: str | None = Field(
        default=None, index=True, description="Unknown until its own event is seen."
    )
    name: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    updated_at: datetime = Field(
        default_factory=now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class LineageEdge(SQLModel, table=True):
    __tablename__ = "lineage_edges"

    source_kind: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    target_kind: str = Field(primary_key=True)
    target_id: str = Field(primary_key=True)
    relation: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    recorded_at: datetime = Field(
        default_factory=now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class OpenLineageEvent(SQLModel, table=True):
    """An OpenLineage run event, kept in the transaction that handled its Forge event and sent after."""

    __tablename__ = "openlineage_outbox"

    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    run_id: str
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(
        default_factory=now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
