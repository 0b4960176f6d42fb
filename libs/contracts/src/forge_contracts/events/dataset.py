"""Events of the dataset service: dataset versions, their aliases, grants (sharing) and dataset tasks (topic
`forge.dataset.events`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from forge_contracts.events.base import (
    EntityEvent,
    Id,
    S3Uri,
    Sha256,
    TenantId,
    Text,
    after,
    before,
    example,
)

_VERSION = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-01T09:30:00Z",
    "actor": "alice",
    "version_id": "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60",
    "dataset_id": "01955b3a-1f00-7aa0-8b1e-3c2d4e5f6a70",
}
_TASK = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-01T10:00:00Z",
    "task_id": "01955b60-2c1d-7e0f-a1b2-c3d4e5f6a7b8",
    "dataset_id": "01955b3a-1f00-7aa0-8b1e-3c2d4e5f6a70",
    "kind": "process",
}


class DatasetVersionEvent(EntityEvent):
    """Fields of every dataset version event; the aggregate is the version."""

    aggregate_field: ClassVar[str] = "version_id"

    version_id: Id = Field(description="The dataset version (the aggregate id, the Kafka key).")
    dataset_id: Id = Field(description="The dataset it is a version of.")


class DatasetVersionCreated(DatasetVersionEvent):
    """A new draft version of a dataset was created; files can now be added to it."""

    event_type: ClassVar[str] = "forge.dataset.version.created.v1"
    model_config = example(
        {**_VERSION, "to_state": "draft", "version": 3, "source": "s3", "parent_version_id": None}
    )

    to_state: Literal["draft"] = after("draft")
    version: int = Field(ge=1, description="The version number within the dataset: 1, 2, 3, ...")
    source: Literal["upload", "s3", "database", "link", "hdfs", "derived"] = Field(
        description="Where its data comes from; `derived` for the output of a dataset task."
    )
    parent_version_id: Id | None = Field(default=None, description="The version it derives from (lineage).")
    operation: str | None = Field(
        default=None,
        max_length=100,
        description="How it was derived from its parent: `split`, `process`, `features`, `convert`, "
        "`labeling_export`, ...; absent for a version of new data.",
    )


class DatasetVersionUploadStarted(DatasetVersionEvent):
    """Files of a draft version started uploading (or importing) into staging storage."""

    event_type: ClassVar[str] = "forge.dataset.version.upload_started.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "draft",
            "to_state": "uploading",
            "staging_uri": "s3://forge-datasets/staging/3/",
        }
    )

    from_state: Literal["draft"] = before()
    to_state: Literal["uploading"] = after("uploading")
    staging_uri: S3Uri = Field(description="Where the files are staged until validated.")


class DatasetVersionUploadFailed(DatasetVersionEvent):
    """The upload or import of a version's files failed; the version is invalid until revised."""

    event_type: ClassVar[str] = "forge.dataset.version.upload_failed.v1"
    model_config = example(
        {**_VERSION, "from_state": "uploading", "to_state": "invalid", "error": "source bucket not found"}
    )

    from_state: Literal["uploading"] = before()
    to_state: Literal["invalid"] = after("invalid")
    error: Text = Field(description="What went wrong, for the user.")


class DatasetVersionValidationStarted(DatasetVersionEvent):
    """All files of a version are uploaded; validation (schema, formats, checksums) started."""

    event_type: ClassVar[str] = "forge.dataset.version.validation_started.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "uploading",
            "to_state": "validating",
            "file_count": 12,
            "size_bytes": 52428800,
        }
    )

    from_state: Literal["uploading"] = before()
    to_state: Literal["validating"] = after("validating")
    file_count: int = Field(ge=0, description="Files uploaded.")
    size_bytes: int = Field(ge=0, description="Their total size.")


class DatasetVersionValidationFailed(DatasetVersionEvent):
    """A version failed validation; it is invalid until revised (back to draft) or discarded."""

    event_type: ClassVar[str] = "forge.dataset.version.validation_failed.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "validating",
            "to_state": "invalid",
            "errors": ["train.jsonl line 17: missing field 'output'"],
        }
    )

    from_state: Literal["validating"] = before()
    to_state: Literal["invalid"] = after("invalid")
    errors: list[Text] = Field(min_length=1, description="Every problem found, for the user.")


class DatasetVersionReopened(DatasetVersionEvent):
    """An invalid version went back to draft so its files can be fixed."""

    event_type: ClassVar[str] = "forge.dataset.version.reopened.v1"
    model_config = example({**_VERSION, "from_state": "invalid", "to_state": "draft"})

    from_state: Literal["invalid"] = before()
    to_state: Literal["draft"] = after("draft")


class DatasetVersionPublished(DatasetVersionEvent):
    """A version passed validation and is published: immutable from now on, usable for training."""

    event_type: ClassVar[str] = "forge.dataset.version.published.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "validating",
            "to_state": "published",
            "manifest_uri": "s3://forge-datasets/acme/manifests/9f86d081.json",
            "manifest_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "item_count": 120000,
            "size_bytes": 52428800,
            "splits": {"train": 96000, "validation": 12000, "test": 12000},
        }
    )

    from_state: Literal["validating"] = before()
    to_state: Literal["published"] = after("published")
    manifest_uri: S3Uri = Field(
        description="The content-addressed manifest listing every file and its checksum."
    )
    manifest_sha256: Sha256 = Field(description="The manifest's checksum: the version's content address.")
    item_count: int = Field(ge=0, description="Records (rows, images, clips) in the version.")
    size_bytes: int = Field(ge=0, description="Total size of its files.")
    splits: dict[str, int] = Field(
        default_factory=dict, description="Items per split (train/validation/test)."
    )


class DatasetVersionDeprecated(DatasetVersionEvent):
    """A published version is deprecated: still readable, but no longer recommended for new work."""

    event_type: ClassVar[str] = "forge.dataset.version.deprecated.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "published",
            "to_state": "deprecated",
            "reason": "labels fixed in v4",
            "replaced_by_version_id": "01955c00-0000-7000-8000-000000000004",
        }
    )

    from_state: Literal["published"] = before()
    to_state: Literal["deprecated"] = after("deprecated")
    reason: Text | None = Field(default=None, description="Why.")
    replaced_by_version_id: Id | None = Field(default=None, description="The version to use instead.")


class DatasetVersionRestored(DatasetVersionEvent):
    """A deprecated version is recommended again (rolled back to)."""

    event_type: ClassVar[str] = "forge.dataset.version.restored.v1"
    model_config = example(
        {**_VERSION, "from_state": "deprecated", "to_state": "published", "reason": "v4 regressed"}
    )

    from_state: Literal["deprecated"] = before()
    to_state: Literal["published"] = after("published")
    reason: Text | None = Field(default=None, description="Why.")


class DatasetVersionArchived(DatasetVersionEvent):
    """A version was archived: kept for lineage and audit, no longer usable for new work."""

    event_type: ClassVar[str] = "forge.dataset.version.archived.v1"
    model_config = example({**_VERSION, "from_state": "deprecated", "to_state": "archived", "reason": None})

    from_state: Literal["published", "deprecated"] = before()
    to_state: Literal["archived"] = after("archived")
    reason: Text | None = Field(default=None, description="Why.")


class DatasetVersionDiscarded(DatasetVersionEvent):
    """An unpublished version was thrown away; its staged files are deleted."""

    event_type: ClassVar[str] = "forge.dataset.version.discarded.v1"
    model_config = example(
        {**_VERSION, "from_state": "invalid", "to_state": "discarded", "reason": "wrong source"}
    )

    from_state: Literal["draft", "uploading", "validating", "invalid"] = before()
    to_state: Literal["discarded"] = after("discarded")
    reason: Text | None = Field(default=None, description="Why.")


ALIAS_PATTERN = r"^[a-z][a-z0-9._-]{0,62}$"
"""A dataset alias: `latest` (moved by every publish), or a name of the users' (`golden`, `prod-eval`)."""


class DatasetAliasEvent(EntityEvent):
    """Fields of every alias event; the aggregate is the dataset (its aliases move one at a time)."""

    aggregate_field: ClassVar[str] = "dataset_id"

    dataset_id: Id = Field(description="The dataset whose alias moved (the aggregate id, the Kafka key).")
    alias: str = Field(pattern=ALIAS_PATTERN, description="The alias (`latest` or a user's name).")


class DatasetAliasMoved(DatasetAliasEvent):
    """An alias of a dataset points at another of its published versions: set for the first time,
    moved forward by a publish (`latest`), or moved back by a user (a rollback)."""

    event_type: ClassVar[str] = "forge.dataset.alias.moved.v1"
    model_config = example(
        {
            "tenant_id": "acme",
            "occurred_at": "2025-03-02T08:00:00Z",
            "actor": "alice",
            "dataset_id": _VERSION["dataset_id"],
            "alias": "latest",
            "version_id": "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60",
            "version_number": 3,
            "previous_version_id": "01955c10-0b1c-7d2e-8f30-41526374a5b6",
            "previous_version_number": 4,
            "rollback": True,
            "reason": "version 4 has mislabelled records",
        }
    )

    version_id: Id = Field(description="The version the alias names now.")
    version_number: int = Field(ge=1, description="Its number in the dataset.")
    previous_version_id: Id | None = Field(default=None, description="The version it named before, if any.")
    previous_version_number: int | None = Field(default=None, ge=1, description="That version's number.")
    rollback: bool = Field(description="Whether it now names an older version than before.")
    reason: Text | None = Field(default=None, description="Why (a user's move).")


class DatasetAliasRemoved(DatasetAliasEvent):
    """A user's alias was removed (`latest` cannot be)."""

    event_type: ClassVar[str] = "forge.dataset.alias.removed.v1"
    model_config = example(
        {
            "tenant_id": "acme",
            "occurred_at": "2025-03-02T09:00:00Z",
            "actor": "alice",
            "dataset_id": _VERSION["dataset_id"],
            "alias": "golden",
            "previous_version_id": "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60",
            "reason": "superseded by the v2 evaluation set",
        }
    )

    previous_version_id: Id = Field(description="The version it named.")
    reason: Text | None = Field(default=None, description="Why.")


GrantAccess = Literal["read", "read+derive"]
"""What a dataset grant lets the grantee tenant do: read, or also derive versions of its own from it."""

_GRANT = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-03T08:00:00Z",
    "actor": "alice",
    "dataset_id": _VERSION["dataset_id"],
    "grant_id": "01955d20-4a1b-7c2d-9e3f-405162738495",
    "grantee_tenant": "globex",
    "version_id": None,
    "access": "read",
    "secrecy": "internal",
}


class DatasetGrantEvent(EntityEvent):
    """Fields of every grant event; the aggregate is the dataset (its grants and aliases in one order)."""

    aggregate_field: ClassVar[str] = "dataset_id"

    dataset_id: Id = Field(description="The dataset shared (the aggregate id, the Kafka key).")
    grant_id: Id = Field(description="The grant.")
    grantee_tenant: TenantId = Field(description="The tenant the dataset is shared with.")
    version_id: Id | None = Field(default=None, description="The one version shared; none: every version.")
    access: GrantAccess = Field(description="`read`, or `read+derive` (derived versions may name it parent).")


class DatasetGrantCreated(DatasetGrantEvent):
    """A dataset (or one published version of it) was shared with another tenant."""

    event_type: ClassVar[str] = "forge.dataset.grant.created.v1"
    model_config = example(_GRANT)

    secrecy: Literal["public", "internal", "confidential"] = Field(
        description="The dataset's secrecy level when it was shared (secret data is never shared)."
    )


class DatasetGrantRevoked(DatasetGrantEvent):
    """A grant was revoked: the grantee's next read of the dataset is a 404."""

    event_type: ClassVar[str] = "forge.dataset.grant.revoked.v1"
    model_config = example(
        {k: v for k, v in _GRANT.items() if k != "secrecy"} | {"reason": "the partnership ended"}
    )

    reason: Text | None = Field(default=None, description="Why.")


class DatasetClearanceSet(EntityEvent):
    """A platform admin set which secrecy level of other tenants' data a tenant may be granted; the
    aggregate is that tenant (`tenant_id`)."""

    event_type: ClassVar[str] = "forge.dataset.clearance.set.v1"
    aggregate_field: ClassVar[str] = "tenant_id"
    model_config = example(
        {
            "tenant_id": "globex",
            "occurred_at": "2025-03-03T07:00:00Z",
            "actor": "ada",
            "level": "confidential",
            "previous_level": "internal",
        }
    )

    level: Literal["public", "internal", "confidential"] = Field(description="The clearance from now on.")
    previous_level: Literal["public", "internal", "confidential"] = Field(
        description="The clearance before (`internal` when none was set)."
    )
    reason: Text | None = Field(default=None, description="Why.")


DatasetTaskKind = Literal[
    "import", "expand", "clean", "dedup", "split", "augment", "features", "convert", "diff", "process"
]
"""`clean` and `dedup` are never emitted (cleaning and dedup operators run in `process` tasks); they stay
in v1 so the schema only grows. `augment` and `features` are the augmentation and feature tasks (DP-2/3)."""


class DatasetTaskEvent(EntityEvent):
    """Fields of every dataset task event; the aggregate is the task."""

    aggregate_field: ClassVar[str] = "task_id"

    task_id: Id = Field(description="The dataset task (the aggregate id, the Kafka key).")
    dataset_id: Id = Field(description="The dataset it works on.")
    kind: DatasetTaskKind = Field(description="What it does.")


class DatasetTaskCreated(DatasetTaskEvent):
    """A dataset task (import, expand, split, diff, convert, process, ...) was created."""

    event_type: ClassVar[str] = "forge.dataset.task.created.v1"
    model_config = example(
        {
            **_TASK,
            "actor": "alice",
            "to_state": "pending",
            "input_version_id": "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60",
            "parameters": {"method": "minhash", "threshold": 0.9},
        }
    )

    to_state: Literal["pending"] = after("pending")
    input_version_id: Id | None = Field(default=None, description="The version it reads; none for an import.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The task's parameters, by kind.")


class DatasetTaskQueued(DatasetTaskEvent):
    """A dataset task is waiting for compute from the scheduler."""

    event_type: ClassVar[str] = "forge.dataset.task.queued.v1"
    model_config = example(
        {
            **_TASK,
            "from_state": "pending",
            "to_state": "queued",
            "allocation_id": "01955b61-0000-7000-8000-00000000a110",
        }
    )

    from_state: Literal["pending"] = before()
    to_state: Literal["queued"] = after("queued")
    allocation_id: Id | None = Field(default=None, description="The scheduler allocation requested for it.")


class DatasetTaskStarted(DatasetTaskEvent):
    """A dataset task started running."""

    event_type: ClassVar[str] = "forge.dataset.task.started.v1"
    model_config = example({**_TASK, "from_state": "queued", "to_state": "running", "attempt": 1})

    from_state: Literal["queued"] = before()
    to_state: Literal["running"] = after("running")
    attempt: int = Field(default=1, ge=1, description="Which attempt this is, from 1.")


class DatasetTaskSucceeded(DatasetTaskEvent):
    """A dataset task finished; its output, if any, is a new dataset version (in draft or published)."""

    event_type: ClassVar[str] = "forge.dataset.task.succeeded.v1"
    model_config = example(
        {
            **_TASK,
            "from_state": "running",
            "to_state": "succeeded",
            "output_version_id": "01955c00-0000-7000-8000-000000000004",
            "stats": {"records_in": 120000, "records_out": 114321, "duplicates_removed": 5679},
            "duration_s": 312.5,
        }
    )

    from_state: Literal["running"] = before()
    to_state: Literal["succeeded"] = after("succeeded")
    output_version_id: Id | None = Field(default=None, description="The dataset version it produced.")
    stats: dict[str, int] = Field(default_factory=dict, description="Counters, e.g. records in and out.")
    duration_s: float = Field(ge=0, description="How long it ran.")


class DatasetTaskFailed(DatasetTaskEvent):
    """A dataset task failed."""

    event_type: ClassVar[str] = "forge.dataset.task.failed.v1"
    model_config = example(
        {
            **_TASK,
            "from_state": "running",
            "to_state": "failed",
            "error": "out of memory",
            "error_code": "oom",
        }
    )

    from_state: Literal["pending", "queued", "running"] = before()
    to_state: Literal["failed"] = after("failed")
    error: Text = Field(description="What went wrong, for the user.")
    error_code: str | None = Field(default=None, max_length=64, description="A stable code for automation.")


class DatasetTaskCancelled(DatasetTaskEvent):
    """A dataset task was cancelled before it finished."""

    event_type: ClassVar[str] = "forge.dataset.task.cancelled.v1"
    model_config = example(
        {**_TASK, "actor": "alice", "from_state": "queued", "to_state": "cancelled", "reason": None}
    )

    from_state: Literal["pending", "queued", "running"] = before()
    to_state: Literal["cancelled"] = after("cancelled")
    reason: Text | None = Field(default=None, description="Why.")
