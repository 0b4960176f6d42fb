"""Tables of the registry's own database: model projects, base models, model versions, evaluations and
the audit trail of every version transition."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forge_kit.db import bigint
from sqlalchemy import Column, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def now() -> datetime:
    return datetime.now(UTC)


def _json(factory: type[dict[str, Any]] | type[list[Any]] = dict) -> Any:
    return Field(default_factory=factory, sa_column=Column(JSONB, nullable=False))


def _time() -> Any:
    return Field(default_factory=now, sa_column=Column(DateTime(timezone=True), nullable=False))


class ModelProject(SQLModel, table=True):
    """The seed table `model_project`, plus the tenant and the project's release gate."""

    __tablename__ = "model_project"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    name: str
    desc: str = ""
    path: str = ""
    train_framework: str = ""
    inference_framework: str = ""
    metrics_url: str = ""
    gate: dict[str, Any] = _json()
    created_at: datetime = _time()


class HubModel(SQLModel, table=True):
    """A pre-trained model of the hub (FT-1/3/4), stored in object storage."""

    __tablename__ = "base_model"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    name: str
    version: str
    uri: str
    architecture: str
    parameter_count: int = bigint()
    intended_use: str = ""
    licence: str = ""
    framework: str = "transformers"
    description: str = ""
    created_at: datetime = _time()


class ModelVersion(SQLModel, table=True):
    """One version of a model project: its lineage, metrics, tags and release-gate state."""

    __tablename__ = "model_version"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    project_id: str = Field(foreign_key="model_project.id", index=True)
    version: int
    state: str
    sequence: int = 0
    artifact_uri: str
    framework: str
    source: str
    training_job_id: str | None = None
    base_model_id: str | None = None
    dataset_versions: list[dict[str, Any]] = _json(list)
    hyperparameters: dict[str, Any] = _json()
    metrics: dict[str, Any] = _json()
    tags: list[str] = _json(list)
    evaluation_id: str | None = None
    evaluation_passed: bool | None = None
    delivery_order_id: str | None = None
    bundle_uri: str | None = None
    created_at: datetime = _time()
    updated_at: datetime = _time()


class Evaluation(SQLModel, table=True):
    """One recorded evaluation of a version and the gate's verdict on it (EV-4: the report is kept)."""

    __tablename__ = "evaluation"

    id: str = Field(primary_key=True, description="The evaluation job's id.")
    tenant: str = Field(index=True)
    version_id: str = Field(foreign_key="model_version.id", index=True)
    passed: bool
    metrics: dict[str, Any] = _json()
    thresholds: dict[str, Any] = _json()
    failed_checks: list[str] = _json(list)
    checks: list[str] = _json(list)
    report: dict[str, Any] = _json()
    report_uri: str
    recorded_at: datetime = _time()


class AuditEntry(SQLModel, table=True):
    """Who moved a version, when, and why: one row per transition (and per tag change)."""

    __tablename__ = "version_audit"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    version_id: str = Field(foreign_key="model_version.id", index=True)
    action: str
    from_state: str | None = None
    to_state: str
    actor: str | None = None
    approved_by: str | None = None
    reason: str | None = None
    details: dict[str, Any] = _json()
    at: datetime = _time()


metadata = SQLModel.metadata
