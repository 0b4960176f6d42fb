"""Requests and views of resumable uploads."""

from __future__ import annotations

from datetime import datetime

from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_contracts.events.base import Sha256
from forge_kit.types import NonNegativeInt64
from pydantic import BaseModel, ConfigDict, Field

from forge_dataset.uploads.service import MAX_PART_BYTES, MIN_PART_BYTES


class UploadStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=FILE_NAME_PATTERN, max_length=1000, description="The file's name in the version."
    )
    part_bytes: int = Field(
        default=16 * 1024**2,
        ge=MIN_PART_BYTES,
        le=MAX_PART_BYTES,
        description="Every part's size but the last's (5 MiB to 512 MiB).",
    )
    size_bytes: NonNegativeInt64 | None = Field(default=None, description="The file's size: checked.")
    sha256: Sha256 | None = Field(default=None, description="The file's sha256: checked on completion.")


class PartView(BaseModel):
    number: int
    size_bytes: int


class UploadView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str
    version_id: str
    name: str
    part_bytes: int
    size_bytes: int | None
    sha256: str | None
    state: str = Field(description="open, completing, completed, aborted or failed.")
    error: str | None
    parts: list[PartView] = Field(default_factory=list, description="Parts received (while open).")
    created_by: str | None
    created_at: datetime
    ended_at: datetime | None
