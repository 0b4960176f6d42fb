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
