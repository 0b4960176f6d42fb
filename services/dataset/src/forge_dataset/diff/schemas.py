"""Request and views of version diffs."""

from __future__ import annotations

from typing import Any, Literal

from forge_kit.types import Line
from pydantic import BaseModel, Field

from forge_dataset.schemas import TaskView

Change = Literal["added", "removed", "changed"]


class DiffRequest(BaseModel):
    base_version_id: Line = Field(max_length=200, description="The older side (any readable version).")
    version_id: Line = Field(max_length=200, description="The newer side, compared against the base.")
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        description=(
            "A top-level field that identifies a record in both versions (records with the same key and "
            "different content are `changed`); none: records are compared by content (added/removed only)."
        ),
    )


class FileChange(BaseModel):
    """A file of either version, by name: added, removed, changed (other bytes) or unchanged."""

    name: str
    change: Literal["added", "removed", "changed", "unchanged"]
    base_sha256: str | None
    sha256: str | None
    base_size_bytes: int | None
    size_bytes: int | None


class DiffSummary(BaseModel):
    added: int
    removed: int
    changed: int
    unchanged: int
    base_records: int
    records: int


class DiffView(BaseModel):
    """A diff: its task (state, progress, ETA), the file-level diff at once, the record counts when done."""

    task: TaskView
    base_version_id: str
    version_id: str
    key: str | None
    files: list[FileChange]
    summary: DiffSummary | None = Field(description="Record counts, once the task succeeded.")


class ChangePage(BaseModel):
    """One page of a diff's records of one kind (`changed` ones as key, fields, before and after)."""

    change: Change
    total: int
    offset: int
    records: list[dict[str, Any]]
    next_offset: int | None = Field(description="Where the next page starts; none after the last.")
