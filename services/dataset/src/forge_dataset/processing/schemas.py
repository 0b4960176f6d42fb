"""The body of `POST .../versions/{vid}/process` and the pages of a processing task's dropped records."""

from __future__ import annotations

from typing import Any

from forge_contracts.events.base import Id
from forge_contracts.processing import Pipeline
from pydantic import BaseModel, ConfigDict, Field


class ProcessResources(BaseModel):
    """What the run asks the scheduler for: one worker (the Ray driver and its local workers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_cores: int = Field(default=1, ge=1, le=256, description="Cores: Ray's CPUs, one task per core.")
    memory_bytes: int = Field(default=2 * 1024**3, ge=512 * 1024**2, le=4 * 1024**4)


class ProcessRequest(Pipeline):
    """Run a pipeline of operators over a published version's record files; the kept records become a
    new version (JSONL, one file per source record file; media files carried over) whose lineage names
    the source and this pipeline. Runs as a workload under `project_id`'s quota in the scheduler."""

    project_id: Id = Field(description="The scheduler project whose quota the run uses.")
    resources: ProcessResources = Field(default_factory=ProcessResources)
    priority: int = Field(default=0, ge=0, le=1000)


class DroppedRecord(BaseModel):
    """A record the pipeline removed: where it was, which operator removed it, why, and what it held."""

    file: str
    record: int = Field(description="1-based position of the record in its source file.")
    variant: str | None = Field(
        default=None,
        description="For an augmented copy dropped by a later operator: which copy (`2`, `1.3`).",
    )
    op: int = Field(description="1-based position of the operator in the pipeline.")
    operator: str
    reason: str
    duplicate_of: dict[str, Any] | None = Field(
        default=None, description="For a duplicate: the kept record it duplicates (`file`, `record`)."
    )
    data: dict[str, Any] = Field(description="The record as the operator saw it.")


class DroppedPage(BaseModel):
    items: list[DroppedRecord]
    total: int = Field(description="Records the task dropped (with the filter: that matched it).")
    next_offset: int | None


class RecordPlace(BaseModel):
    file: str
    record: int = Field(description="1-based position of the record in its file.")


class Augmentation(BaseModel):
    """One augmentation behind a copy: the operator (1-based), which of its copies, and the seed that
    makes it again."""

    op: int
    index: int = Field(description="Which of the operator's copies of its input (1-based).")
    seed: int


class RecordLineage(BaseModel):
    """An output record of a processing task and the source record it came from."""

    file: str = Field(description="The output version's file.")
    record: int = Field(description="1-based position of the record in that file.")
    source: RecordPlace = Field(description="The source version's record it came from.")
    variant: str | None = Field(
        default=None,
        description="For an augmented copy: which (`2`: its source's second copy; `1.3`: the third copy a "
        "later operator made of that source's first copy); null for the source record itself.",
    )
    augmentations: list[Augmentation] = Field(default_factory=list)


class RecordLineagePage(BaseModel):
    items: list[RecordLineage]
    total: int = Field(description="Output records (with a filter: that match it).")
    next_offset: int | None


class LineageQuery(BaseModel):
    """Which output records to trace: by output place, or by the source record they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    record: int | None = Field(default=None, ge=1)
    source_file: str | None = None
    source_record: int | None = Field(default=None, ge=1)
    augmented: bool | None = Field(default=None, description="Only augmented copies (true) or only sources.")
