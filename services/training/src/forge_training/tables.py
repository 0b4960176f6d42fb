"""Tables of the training service: training jobs, their metric series, logs and uploaded checkpoints;
evaluation jobs and the records they kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))


def _aware(nullable: bool = True) -> Any:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


class TrainingJob(SQLModel, table=True):
    """A fine-tuning job: what to train and how, where it stands, and what it produced."""

    __tablename__ = "training_jobs"

    id: str = Field(primary_key=True)
    tenant: str
    project_id: str
    name: str
    kind: str = "fine_tune"
    method: str = "lora"
    state: str = "pending"
    sequence: int = 0
    created_by: str | None = None
    priority: int = 0
    base_model_uri: str
    base_model_id: str | None = None  # the hub's base model it was resolved from
    base_model_version_id: str | None = None
    dataset_id: str | None = None
    dataset_version_id: str
    dataset_bucket: str
    train_key: str
    validation_key: str | None = None
    data_format: str = "auto"
    hyperparameters: dict[str, Any] = _json()
    lora: dict[str, Any] = _json()
    resources: dict[str, Any] = _json()
    allocation_request_id: str
    scheduler_project_id: str | None = None  # whose quota the run uses; None: unscheduled
    allocation_id: str | None = None  # the scheduler's allocation, once requested
    queue: str = "local"
    attempt: int = 0
    step: int = 0
    total_steps: int | None = None
    eta_s: float | None = None
    latest_metrics: dict[str, Any] = _json()
    last_checkpoint_step: int | None = None
    last_checkpoint_uri: str | None = None
    model_uri: str | None = None
    adapter_uri: str | None = None
    resumed_from_step: int | None = None
    error: str | None = None
    exit_code: int | None = None
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None
    created_at: datetime = Field(default_factory=_now, sa_column=_aware(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_aware())
    finished_at: datetime | None = Field(default=None, sa_column=_aware())


class TrainingMetric(SQLModel, table=True):
    """One value of one metric at one step (a retried step overwrites its value)."""

    __tablename__ = "training_metrics"

    job_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    step: int = Field(primary_key=True)
    value: float | None = None


class TrainingLog(SQLModel, table=True):
    """One log line of a job; `seq` numbers a job's lines from 1."""

    __tablename__ = "training_logs"

    job_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    level: str
    message: str
    logged_at: datetime = Field(default_factory=_now, sa_column=_aware(nullable=False))


class TrainingCheckpoint(SQLModel, table=True):
    """A checkpoint uploaded to object storage (the row exists only once the upload is complete)."""

    __tablename__ = "training_checkpoints"

    job_id: str = Field(primary_key=True)
    step: int = Field(primary_key=True)
    uri: str
    uploaded_at: datetime = Field(default_factory=_now, sa_column=_aware(nullable=False))


class EvaluationJob(SQLModel, table=True):
    """An evaluation of a model on a test file: what, where it stands, and its metrics and outputs."""

    __tablename__ = "evaluation_jobs"
    __table_args__ = (sa.UniqueConstraint("tenant", "request_key", name="evaluation_jobs_request_key"),)

    id: str = Field(primary_key=True)
    tenant: str
    request_key: str
    state: str = "pending"
    sequence: int = 0
    created_by: str | None = None
    model_uri: str
    model_version_id: str | None = None
    training_job_id: str | None = None
    base_model_id: str | None = None
    dataset_id: str | None = None
    dataset_version_id: str | None = None
    test_file: str | None = None  # its name in the dataset version
    test_bucket: str
    test_key: str
    thresholds: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    passed: bool | None = None  # None: no thresholds were given, nothing was judged
    failed_checks: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    data_format: str = "auto"
    max_new_tokens: int = 32
    max_records: int | None = None
    attempt: int = 0
    phase: str | None = None
    metrics: dict[str, Any] = _json()
    record_count: int | None = None
    records_uri: str | None = None
    report_uri: str | None = None
    error: str | None = None
    exit_code: int | None = None
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None
    created_at: datetime = Field(default_factory=_now, sa_column=_aware(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_aware())
    finished_at: datetime | None = Field(default=None, sa_column=_aware())


class EvaluationRecord(SQLModel, table=True):
    """One test example as the model saw and answered it (EV-5); `seq` numbers them from 1."""

    __tablename__ = "evaluation_records"

    evaluation_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    prompt: str
    reference: str
    prediction: str
