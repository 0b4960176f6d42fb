"""Tables of the dataset service's own database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forge_kit.db import bigint
from sqlalchemy import Column, DateTime, LargeBinary, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _ts() -> Any:
    return Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    name: str
    description: str = ""
    modality: str
    secrecy: str
    licence: str
    source: str
    schema_hint: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    version_count: int = 0
    sequence: int = 0
    """The dataset's own event counter: its aliases' moves (forge.dataset.alias.*)."""
    created_by: str | None = None
    created_at: datetime = _ts()


class DatasetAlias(SQLModel, table=True):
    """A name for one published version of a dataset: `latest` (moved by each publish) or a user's."""

    __tablename__ = "dataset_aliases"

    dataset_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    version_id: str
    moved_by: str | None = None
    moved_at: datetime = _ts()


class DatasetVersion(SQLModel, table=True):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"), UniqueConstraint("tenant", "request_key"))

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    dataset_id: str = Field(index=True)
    number: int
    state: str = "draft"
    sequence: int = 0
    source: str = "upload"
    parent_version_id: str | None = None
    operation: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    request_key: str | None = None
    manifest_sha256: str | None = None
    manifest_key: str | None = None
    item_count: int = bigint(0)
    size_bytes: int = bigint(0)
    splits: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    errors: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    record_schema: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    """Inferred when published: a JSON Schema of its records (fields, types, required)."""
    created_by: str | None = None
    created_at: datetime = _ts()
    published_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class VersionFile(SQLModel, table=True):
    __tablename__ = "dataset_version_files"

    version_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    object_key: str
    sha256: str
    size_bytes: int = bigint()
    record_count: int = bigint()
    format: str | None = None
    """jsonl, csv or parquet for record files; None for media and other blobs."""
    media_type: str = "application/octet-stream"
    stats: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    """What the scan saw (statistics.domain.FileStats); none for files scanned before it existed."""
    uploaded_at: datetime = _ts()


class DatasetTask(SQLModel, table=True):
    """A background job on a dataset (diff, split, import...), run by its own Temporal workflow."""

    __tablename__ = "dataset_tasks"
    __table_args__ = (UniqueConstraint("tenant", "request_key", name="dataset_tasks_request_key"),)

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    dataset_id: str = Field(index=True)
    kind: str
    state: str = "pending"
    sequence: int = 0
    input_version_id: str | None = None
    output_version_id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    progress: float = 0.0
    progress_detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    """Units done and in all, by unit (records, bytes), and the phase the task is in."""
    eta_s: float | None = None
    attempt: int = 0
    stats: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    """What a finished task produced beyond a version (a diff's summary and where its changes are)."""
    error: str | None = None
    request_key: str | None = None
    """Identical requests (same kind and inputs) share the task while it is active or succeeded."""
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None
    created_by: str | None = None
    created_at: datetime = _ts()
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = _ts()


class SourceConnection(SQLModel, table=True):
    """An object store or SQL database a user registered in their tenant, for imports to read from; its
    secret (a secret key, a password) sealed by connections.crypto, never shown."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("tenant", "name", name="connections_tenant_name"),)

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    name: str
    kind: str
    """s3, postgres or mysql."""
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    """Where it is and who connects (endpoint, region, bucket, access_key; host, port, database, username)."""
    sealed_secret: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_by: str | None = None
    created_at: datetime = _ts()
    verified_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class DatasetGrant(SQLModel, table=True):
    """A dataset (or one version of it) shared with another tenant; kept when revoked (`revoked_at`)."""

    __tablename__ = "dataset_grants"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    """The owner tenant (the dataset's)."""
    dataset_id: str = Field(index=True)
    grantee_tenant: str = Field(index=True)
    version_id: str | None = None
    """The one version shared; None: every published version of the dataset, present and future."""
    access: str = "read"
    granted_by: str | None = None
    granted_at: datetime = _ts()
    revoked_by: str | None = None
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoke_reason: str | None = None


class TenantClearance(SQLModel, table=True):
    """The secrecy level of other tenants' data a tenant may be granted, set by a platform admin (a tenant
    without a row is cleared up to `forge_kit.secrecy.DEFAULT_CLEARANCE`)."""

    __tablename__ = "tenant_clearances"

    tenant: str = Field(primary_key=True)
    level: str
    sequence: int = 0
    set_by: str | None = None
    set_at: datetime = _ts()


class Upload(SQLModel, table=True):
    """A resumable upload of one file of a draft version (an S3 multipart upload under the hood)."""

    __tablename__ = "dataset_uploads"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    dataset_id: str
    version_id: str = Field(index=True)
    name: str
    object_key: str
    s3_upload_id: str
    part_bytes: int = bigint()
    size_bytes: int | None = bigint(None)
    """The size the client announced (checked on completion)."""
    sha256: str | None = None
    """The sha256 the client announced (checked on completion)."""
    state: str = "open"
    """open, completed, aborted or failed."""
    error: str | None = None
    created_by: str | None = None
    created_at: datetime = _ts()
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class FeatureTransformer(SQLModel, table=True):
    """A fitted feature transformer (DP-3): scikit-learn steps fitted on one version, stored as a joblib
    artifact at a content-addressed key, applied unchanged to other versions of the tenant."""

    __tablename__ = "feature_transformers"

    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    dataset_id: str = Field(index=True)
    fitted_on_version_id: str
    task_id: str
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    object_key: str
    sha256: str
    size_bytes: int = bigint()
    dimensions: int
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_by: str | None = None
    created_at: datetime = _ts()
