"""Tables of the delivery service's own database: delivery orders (with their bundle's files)."""

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


class DeliveryOrder(SQLModel, table=True):
    """One execution of a delivery: pack a model version into a bundle and hand it to inference.

    At most one order per (tenant, model name, version) is active or delivered at a time (a partial
    unique index), since they would write the same bundle location.
    """

    __tablename__ = "delivery_order"

    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    state: str = "created"
    sequence: int = 0
    idempotency_key: str | None = None
    request_hash: str | None = None
    """SHA-256 of the request that created it: the same idempotency key with another request is refused."""
    created_by: str | None = None

    model_version_id: str = Field(index=True)
    model_id: str
    model_name: str
    model_version: int
    deployment_id: str | None = None
    target: str = "model_files"
    format: str = "safetensors"
    source_uri: str
    """The version's artifact, as the registry gave it (never the caller)."""
    bundle_uri: str
    card: dict[str, Any] = _json()
    inference: dict[str, Any] = _json()
    mirror: bool = False
    shared_path: str | None = None

    files: list[dict[str, Any]] = _json(list)
    """Every file of the bundle ({path, sha256, size_bytes}), once packed."""
    written_keys: list[str] = _json(list)
    """Object keys this order wrote, so a failed or cancelled order removes exactly those."""
    progress_stage: str | None = None
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = bigint(0)  # a bundle passes 2 GiB from about 1B parameters in fp16
    bytes_total: int = bigint(0)

    error: str | None = None
    failed_stage: str | None = None
    created_at: datetime = _time()
    updated_at: datetime = _time()
