"""Workflows and activities of the labeling service (task queue `forge-labeling`).

`ImportRecordsWorkflow` (workflow id `labeling-import:<project id>`, input `ImportRecords`) resolves the
dataset version a labeling project is created from, by calling `dataset.resolve_version` on the dataset
service's task queue, and returns the `ResolvedVersion` (the service then reads the files and creates one
labeling task per record).

`ExportWorkflow` (workflow id `labeling-export:<export id>`, input `ExportRequest`) turns a project's
accepted annotations into a new dataset version:

    written = await workflow.execute_activity(WRITE_EXPORT, ExportRef(...), result_type=ExportedFile, ...)
    version = await workflow.execute_activity(
        PUBLISH_DERIVED_VERSION, PublishDerivedVersion(..., request_id=f"labeling-export:{export_id}"),
        result_type=ResolvedVersion, task_queue=request.dataset_task_queue, ...)
    await workflow.execute_activity(COMPLETE_EXPORT, ExportCompleted(...), result_type=ExportStatus, ...)

Every activity is idempotent by the export id: `write_export` writes the same object key each time,
`complete_export` and `fail_export` do nothing to an export that already ended, and the dataset version
is published once per export (its `request_id` is derived from the export id).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_contracts.activities.dataset import TASK_QUEUE as DATASET_TASK_QUEUE
from forge_contracts.events.base import Actor, Id, TenantId

TASK_QUEUE = "forge-labeling"
IMPORT_WORKFLOW = "labeling.ImportRecordsWorkflow"
EXPORT_WORKFLOW = "labeling.ExportWorkflow"
WRITE_EXPORT = "labeling.write_export"
COMPLETE_EXPORT = "labeling.complete_export"
FAIL_EXPORT = "labeling.fail_export"
EXPORT_OPERATION = "labeling_export"
"""The `operation` recorded in the lineage of a dataset version published by an export."""

ExportState = Literal["pending", "running", "succeeded", "failed"]


def import_workflow_id(project_id: str) -> str:
    """The id of the workflow importing the records of project `project_id`."""
    return f"labeling-import:{project_id}"


def export_workflow_id(export_id: str) -> str:
    """The id of the workflow running export `export_id` (one workflow per export)."""
    return f"labeling-export:{export_id}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImportRecords(_Model):
    """The input of `ImportRecordsWorkflow`: which dataset version, and where the dataset service runs."""

    tenant_id: TenantId
    dataset_id: Id
    version_id: Id
    dataset_task_queue: str = Field(default=DATASET_TASK_QUEUE, min_length=1)


class ExportRequest(_Model):
    """The input of `ExportWorkflow`."""

    tenant_id: TenantId
    export_id: Id
    dataset_task_queue: str = Field(default=DATASET_TASK_QUEUE, min_length=1)


class ExportRef(_Model):
    """Which export an activity acts on."""

    tenant_id: TenantId
    export_id: Id


class ExportedFile(_Model):
    """The JSONL file `write_export` wrote, and what the derived version is to record."""

    tenant_id: TenantId
    export_id: Id
    project_id: Id
    dataset_id: Id = Field(
        description="The dataset the project's records come from (and the export goes to)."
    )
    source_version_id: Id = Field(
        description="The version the project was created from (the lineage parent)."
    )
    bucket: str
    object_key: str
    file_name: str = Field(description="The file's name in the derived version, e.g. `labeled.jsonl`.")
    record_count: int = Field(ge=0)
    label_field: str
    actor: Actor | None = None


class ExportCompleted(_Model):
    """`complete_export`'s input: the dataset version the export became."""

    tenant_id: TenantId
    export_id: Id
    dataset_version_id: Id
    dataset_version_number: int = Field(ge=1)


class ExportFailed(_Model):
    """`fail_export`'s input: why the export could not complete."""

    tenant_id: TenantId
    export_id: Id
    error: str = Field(min_length=1, max_length=4000)


class ExportStatus(_Model):
    """An export's state after an activity."""

    export_id: Id
    state: ExportState
    dataset_version_id: Id | None = None


__all__ = [
    "COMPLETE_EXPORT",
    "EXPORT_OPERATION",
    "EXPORT_WORKFLOW",
    "FAIL_EXPORT",
    "IMPORT_WORKFLOW",
    "TASK_QUEUE",
    "WRITE_EXPORT",
    "ExportCompleted",
    "ExportFailed",
    "ExportRef",
    "ExportRequest",
    "ExportState",
    "ExportStatus",
    "ExportedFile",
    "ImportRecords",
    "export_workflow_id",
    "import_workflow_id",
]
