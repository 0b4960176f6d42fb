"""Activities of the dataset service (task queue `forge-dataset`): resolve a published version to its
manifest, and publish a version derived from files already in object storage.

    resolved = await workflow.execute_activity(
        RESOLVE_VERSION, DatasetVersionRef(...), result_type=ResolvedVersion,
        task_queue="forge-dataset", start_to_close_timeout=timedelta(seconds=30),
    )

Both are idempotent: resolving reads only, and publishing is keyed by `request_id` (or, when absent, by
the calling activity's idempotency key), so a retry returns the version the first attempt published.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_contracts.activities.scheduler import WorkerResources
from forge_contracts.events.base import UUID_PATTERN, Actor, Id, Sha256, TenantId
from forge_contracts.events.dataset import ALIAS_PATTERN
from forge_contracts.registered import RegisteredModel

TASK_QUEUE = "forge-dataset"
RESOLVE_VERSION = "dataset.resolve_version"
PUBLISH_DERIVED_VERSION = "dataset.publish_derived_version"

TASK_WORKFLOW = "DatasetTaskWorkflow"
PROCESS_WORKFLOW = "DatasetProcessWorkflow"
"""A processing task: the scheduler's allocation around the task's run."""
"""One dataset task (diff, split, ...) in the background: run it, then end it cancelled or failed."""
RUN_TASK = "dataset.run_task"
END_TASK = "dataset.end_task"

FILE_NAME_PATTERN = (
    r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,122}/){0,15}[A-Za-z0-9][A-Za-z0-9._-]{0,122}\.[A-Za-z0-9]{1,10}$"
)
"""What a file of a dataset version may be called: a relative path of up to 16 segments (`images/cat/
001.png`), each starting with a letter or digit (so no `..`, no hidden files), ending in an extension
that says what it is (`.jsonl`, `.csv`, `.parquet`, `.png`, `.wav`, `.mp4`, ...)."""
RECORD_FILE_PATTERN = r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,122}/){0,15}[A-Za-z0-9][A-Za-z0-9._-]{0,122}\.jsonl$"
"""A JSONL record file's name (what a training job reads, and what derived versions are made of)."""


VERSION_SELECTOR_PATTERN = f"^(?:{UUID_PATTERN[1:-1]}|{ALIAS_PATTERN[1:-1]})$"
VersionSelector = Annotated[
    str,
    Field(
        pattern=VERSION_SELECTOR_PATTERN,
        description="A version id, or an alias of its dataset (`latest`, `golden`), resolved to the version "
        "it names when the request is made.",
    ),
]
"""How a consumer (a training job, a chain, an evaluation) names a dataset version: by id or by alias."""


def is_version_id(selector: str) -> bool:
    """Whether a `VersionSelector` is a version id (UUID-shaped) rather than an alias name."""
    return re.fullmatch(UUID_PATTERN, selector) is not None


class DatasetVersionRef(BaseModel):
    """Which dataset version to resolve, as seen by `tenant_id`."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    dataset_id: Id
    version_id: VersionSelector


class ManifestFile(BaseModel):
    """One file of a version, as listed in its manifest."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The file name within the version, e.g. `train.jsonl`.")
    object_key: str = Field(description="Its key in `ResolvedVersion.bucket` (content-addressed).")
    sha256: Sha256
    size_bytes: int = Field(ge=0)
    record_count: int = Field(ge=0)
    format: Literal["jsonl", "csv", "parquet"] | None = Field(
        default=None, description="The record format of a record file; absent for media and other blobs."
    )
    media_type: str | None = Field(default=None, description="e.g. `image/png`, `application/x-ndjson`.")


class ResolvedVersion(BaseModel):
    """A published dataset version: where its files are and what they hold."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    dataset_id: Id
    version_id: Id
    number: int = Field(ge=1, description="The version number within the dataset.")
    state: Literal["published", "deprecated"]
    modality: Literal["text", "image", "audio", "video"]
    bucket: str = Field(description="The bucket holding the manifest and every file.")
    manifest_key: str
    manifest_sha256: Sha256 = Field(description="The version's content address.")
    files: list[ManifestFile]
    item_count: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    parent_version_id: Id | None = None


class DerivedFile(BaseModel):
    """A JSONL file already in object storage, to become one file of a derived version."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=RECORD_FILE_PATTERN, description="Its file name in the derived version.")
    object_key: str = Field(min_length=1, max_length=1024)
    bucket: str | None = Field(default=None, description="Default: the dataset service's bucket.")


class PublishDerivedVersion(BaseModel):
    """Create and publish a version of `dataset_id` from files in object storage (validated and copied
    to content-addressed keys), with lineage to `parent_version_id`."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    dataset_id: Id
    parent_version_id: Id | None = Field(default=None, description="The version it derives from.")
    operation: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$", description="e.g. `labeling_export`."
    )
    parameters: dict[str, Any] = Field(default_factory=dict, description="The operation's parameters.")
    files: list[DerivedFile] = Field(min_length=1)
    actor: Actor | None = None
    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Idempotency key; default: the calling activity's workflow run and activity id.",
    )


class TaskRef(BaseModel):
    """A dataset task, as its workflow names it (the workflow id is `dataset-task-<task_id>`)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    task_id: Id
    models: dict[str, str] = Field(
        default_factory=dict,
        description="The registry's models the task reads, resolved by its workflow: "
        "`RegisteredModel.key` -> where the model's files are (s3://).",
    )


class TaskScheduling(BaseModel):
    """What a scheduled task asks the scheduler for: its project's quota, one worker of this size."""

    model_config = ConfigDict(frozen=True)

    project_id: Id
    per_worker: WorkerResources
    priority: int = Field(default=0, ge=0, le=1000)
    wait_for_admission_s: float = Field(default=86_400.0, gt=0, le=86_400)


class ScheduledTaskRef(TaskRef):
    """A task that runs on an allocation of the scheduler (`DatasetProcessWorkflow`); the registry's
    models it names are resolved (in its tenant) before it asks for compute."""

    scheduling: TaskScheduling
    registered_models: list[RegisteredModel] = Field(default_factory=list)
    registry_task_queue: str = "forge-registry"


class TaskEnd(BaseModel):
    """How a task that did not succeed ended: cancelled (as asked), or failed with the reason."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    task_id: Id
    outcome: Literal["cancelled", "failed"]
    error: str | None = Field(default=None, max_length=4000)


class TaskOutcome(BaseModel):
    """Where the task ended."""

    model_config = ConfigDict(frozen=True)

    task_id: Id
    state: Literal["succeeded", "failed", "cancelled"]
    error: str | None = None


def task_workflow_id(task_id: str) -> str:
    return f"dataset-task-{task_id}"


__all__ = [
    "END_TASK",
    "FILE_NAME_PATTERN",
    "PROCESS_WORKFLOW",
    "PUBLISH_DERIVED_VERSION",
    "RECORD_FILE_PATTERN",
    "RESOLVE_VERSION",
    "RUN_TASK",
    "TASK_QUEUE",
    "TASK_WORKFLOW",
    "DatasetVersionRef",
    "DerivedFile",
    "ManifestFile",
    "PublishDerivedVersion",
    "ResolvedVersion",
    "ScheduledTaskRef",
    "TaskEnd",
    "TaskOutcome",
    "TaskRef",
    "TaskScheduling",
    "task_workflow_id",
]
