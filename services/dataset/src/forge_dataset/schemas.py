"""Request and response models of the dataset API."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from forge_kit.types import FiniteFloat, Line, NonBlankText, NonNegativeInt64, Text
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forge_dataset.domain import Modality, Secrecy
from forge_dataset.media.references import hint_problems as media_hint_problems
from forge_dataset.media.schemas import MediaLinks
from forge_dataset.split.domain import SPLIT_NAMES
from forge_dataset.statistics.domain import hint_problems


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    description: Text = Field(default="", max_length=4000)
    modality: Modality
    secrecy: Secrecy = Field(description="Classification: public, internal, confidential or secret.")
    licence: Line = Field(min_length=1, max_length=200, description="e.g. `CC-BY-4.0`, `proprietary`.")
    source: Text = Field(min_length=1, max_length=1000, description="Where the data comes from.")
    schema_hint: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A JSON Schema of a record. Its `properties` (each with `type`), `required` and "
            "`additionalProperties` are checked when a version is published, and a property with "
            "`contentMediaType` (`image/*`) names a media file of the version in every record; anything "
            "else is a description."
        ),
    )

    @field_validator("schema_hint")
    @classmethod
    def _hint(cls, hint: dict[str, Any] | None) -> dict[str, Any] | None:
        if hint is not None and (problems := hint_problems(hint) + media_hint_problems(hint)):
            raise ValueError("; ".join(problems))
        return hint


class DatasetView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    modality: Modality
    secrecy: Secrecy
    licence: str
    source: str
    schema_hint: dict[str, Any] | None
    version_count: int
    created_by: str | None
    created_at: datetime


class FileView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    object_key: str
    sha256: str
    size_bytes: int
    record_count: int
    format: str | None = Field(
        default=None, description="jsonl, csv or parquet; none for a media file or blob."
    )
    media_type: str = Field(default="application/octet-stream", description="e.g. `image/png`.")


class VersionView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str
    number: int
    state: str
    sequence: int
    source: str
    parent_version_id: str | None
    operation: str | None
    parameters: dict[str, Any]
    manifest_sha256: str | None
    manifest_uri: str | None = None
    item_count: int
    size_bytes: int
    splits: dict[str, int]
    errors: list[str]
    record_schema: dict[str, Any] | None = Field(
        default=None, description="Once published: a JSON Schema of its records, inferred from them."
    )
    created_at: datetime
    published_at: datetime | None
    files: list[FileView] = Field(default_factory=list)


class SplitRequest(BaseModel):
    """A split: `ratios` (train/validation/test) or `folds` (k-fold), optionally stratified on a field
    (exact proportions per value) or grouped by one (no group across outputs), always seeded."""

    model_config = ConfigDict(extra="forbid")

    ratios: dict[str, FiniteFloat] | None = Field(
        default=None,
        description="Fractions for `train`, `validation` and `test`, each in [0, 1], summing to 1.",
    )
    folds: int | None = Field(
        default=None, ge=2, le=100, description="k-fold: k outputs `fold-1`..`fold-k` of (nearly) equal size."
    )
    seed: NonNegativeInt64 = Field(description="The same seed gives the same split.")
    stratify_by: Line | None = Field(
        default=None, min_length=1, max_length=200, description="Keep this field's proportions per output."
    )
    group_by: Line | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Records with the same value of this field (a user, a document) go to one output.",
    )

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, ratios: dict[str, float] | None) -> dict[str, float] | None:
        if ratios is None:
            return None
        if set(ratios) != set(SPLIT_NAMES):
            raise ValueError(f"ratios must name exactly {', '.join(SPLIT_NAMES)}")
        if any(not 0 <= value <= 1 for value in ratios.values()):
            raise ValueError("every ratio must be between 0 and 1")
        if not math.isclose(sum(ratios.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"ratios must sum to 1, not {sum(ratios.values()):g}")
        return ratios

    @model_validator(mode="after")
    def _one_kind(self) -> SplitRequest:
        if (self.ratios is None) == (self.folds is None):
            raise ValueError("give either ratios or folds")
        if self.ratios is not None and self.ratios["train"] == 0:
            raise ValueError("the train ratio must be above 0")
        if self.stratify_by is not None and self.group_by is not None:
            raise ValueError("stratify_by and group_by cannot be combined")
        return self


class VersionStateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: NonBlankText | None = Field(default=None, min_length=1, max_length=4000)
    replaced_by_version_id: Line | None = Field(
        default=None,
        max_length=200,
        description="For `deprecate`: the version to use instead (same dataset).",
    )


class TaskView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str
    kind: str
    state: str
    sequence: int
    input_version_id: str | None
    output_version_id: str | None
    parameters: dict[str, Any]
    progress: float = Field(description="0 to 1.")
    progress_detail: dict[str, Any] = Field(
        description="What the progress counts: the `phase`, and units done and in all (records, bytes)."
    )
    eta_s: float | None = Field(description="Seconds left at the rate so far; none until it is known.")
    attempt: int = Field(description="Runs so far (a task whose worker died is run again).")
    stats: dict[str, int]
    result: dict[str, Any] = Field(description="What the task produced besides a version (by kind).")
    error: str | None
    created_by: str | None
    cancel_requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime


class TaskCancel(BaseModel):
    reason: NonBlankText | None = Field(default=None, min_length=1, max_length=4000)


class LineageStep(BaseModel):
    """One version in a lineage chain, with the operation that produced it from its parent."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str
    number: int
    state: str
    source: str
    manifest_sha256: str | None
    parent_version_id: str | None
    operation: str | None
    parameters: dict[str, Any]


class LineageView(BaseModel):
    version_id: str
    chain: list[LineageStep] = Field(description="This version first, then its parent, back to the raw one.")


class PreviewItem(BaseModel):
    file: str = Field(description="The file the record is in.")
    index: int = Field(description="Its position in that file (0-based).")
    record: dict[str, Any]
    references: dict[str, str] = Field(
        default_factory=dict,
        description="Field -> the media file of the version it names (fields the schema hint gives a "
        "`contentMediaType`); that file's previews are in `media`.",
    )


class PreviewView(BaseModel):
    version_id: str
    modality: Modality
    records: list[dict[str, Any]] = Field(description="The page's records (from every record file).")
    items: list[PreviewItem] = Field(
        default_factory=list, description="The same records, with where each is."
    )
    next_offset: int | None = Field(
        default=None, description="The `offset` of the next page; none at the end."
    )
    scanned: int = Field(default=0, description="Records read to answer.")
    complete: bool = Field(default=True, description="Whether every record was read (search can stop early).")
    files: list[FileView]
    media: list[MediaLinks] = Field(
        default_factory=list, description="Image, audio and video files: where their previews are."
    )
