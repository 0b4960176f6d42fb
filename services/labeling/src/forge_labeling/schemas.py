"""Request and response models of the labeling API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from forge_contracts.activities.labeling import ExportState
from forge_contracts.events.base import UUID_PATTERN
from forge_kit.types import FiniteFloat, Line, NonBlankLine, NonBlankText, Text, Username
from pydantic import BaseModel, ConfigDict, Field, field_validator

from forge_labeling.domain import ExportFormat, TemplateKind

_NAME = Field(min_length=1, max_length=200)
_REASON = Field(default=None, min_length=1, max_length=4000)


class TemplateCreate(BaseModel):
    """A text-classification template: which labels, and which record field holds the text."""

    model_config = ConfigDict(extra="forbid")

    name: NonBlankLine = _NAME
    kind: TemplateKind = TemplateKind.text_classification
    labels: list[Line] = Field(
        min_length=1, max_length=1000, description="The labels an annotator picks from."
    )
    text_field: Line = Field(min_length=1, max_length=200, description="The record field holding the text.")
    instructions: Text | None = Field(default=None, max_length=20_000)

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not label.strip() or len(label) > 200:
                raise ValueError("every label must be 1 to 200 characters and not blank")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        return labels


class TemplateView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: TemplateKind
    labels: list[str]
    text_field: str
    instructions: str | None
    created_by: str | None
    created_at: datetime


class ProjectCreate(BaseModel):
    """A project labels every record of one published dataset version with one template."""

    model_config = ConfigDict(extra="forbid")

    name: NonBlankLine = _NAME
    template_id: str = Field(pattern=UUID_PATTERN)
    dataset_id: str = Field(pattern=UUID_PATTERN)
    version_id: str = Field(pattern=UUID_PATTERN, description="A published version of that dataset.")


class ProjectView(BaseModel):
    id: str
    name: str
    template_id: str
    dataset_id: str
    dataset_version_id: str
    dataset_version_number: int
    task_count: int
    counts: dict[str, int] = Field(description="Tasks per state.")
    progress: float = Field(ge=0, le=1, description="The share of tasks that are done (terminal).")
    created_by: str | None
    created_at: datetime


class AnnotationView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    label: str
    annotator: str
    lead_time_s: float | None
    review: str | None
    reviewer: str | None
    reason: str | None
    submitted_at: datetime
    reviewed_at: datetime | None


class TaskView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    item_id: str
    position: int
    record: dict[str, Any]
    state: str
    sequence: int = Field(description="How many events this task has published.")
    assignee: str | None
    annotation_id: str | None
    updated_at: datetime


class TaskDetail(TaskView):
    annotations: list[AnnotationView] = Field(default_factory=list, description="Oldest first.")


class TaskPage(BaseModel):
    tasks: list[TaskView]
    total: int = Field(description="How many tasks match, across pages.")


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: Username | None = Field(default=None, description="Default: the caller.")


class AssignTo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: Username = Field(description="The annotator who gets the task.")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: NonBlankText | None = _REASON


class AnnotationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Line = Field(min_length=1, max_length=200, description="One of the template's labels.")
    lead_time_s: FiniteFloat | None = Field(default=None, ge=0, description="Time spent annotating.")


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewer: Line | None = Field(
        default=None, min_length=1, max_length=256, description="Default: the caller."
    )


class Rejection(Review):
    reason: NonBlankText = Field(min_length=1, max_length=4000, description="What to fix.")


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: ExportFormat = ExportFormat.jsonl
    label_field: Line = Field(
        default="label", min_length=1, max_length=200, description="The field that carries the label."
    )
    request_id: Line | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Idempotency key: the same key for the same project returns the same export.",
    )


class ExportView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    request_id: str
    format: ExportFormat
    label_field: str
    state: ExportState
    record_count: int
    object_uri: str | None = None
    dataset_version_id: str | None
    dataset_version_number: int | None
    error: str | None
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
