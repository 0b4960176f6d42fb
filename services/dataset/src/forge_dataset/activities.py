"""Temporal activities on the dataset task queue (names and models in forge_contracts.activities.dataset).

Both are idempotent: `resolve_version` only reads; `publish_derived_version` is keyed by the request's
`request_id` or else by the activity's idempotency key, so Temporal's retries return the first result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forge_contracts.activities.dataset import (
    PUBLISH_DERIVED_VERSION,
    RESOLVE_VERSION,
    DatasetVersionRef,
    ManifestFile,
    PublishDerivedVersion,
    ResolvedVersion,
)
from forge_kit.auth import Principal
from forge_kit.errors import ForgeError
from forge_kit.temporal import idempotency_key
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_dataset import service
from forge_dataset.deps import Deps
from forge_dataset.tables import DatasetVersion, VersionFile


def _non_retryable(error: ForgeError) -> ApplicationError:
    """A caller's mistake (not found, wrong state, bad records): retrying cannot help."""
    return ApplicationError(error.detail, type=type(error).__name__, non_retryable=True)


class DatasetActivities:
    """The activities, bound to the service's database and bucket."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=RESOLVE_VERSION)
    async def resolve_version(self, ref: DatasetVersionRef) -> ResolvedVersion:
        """The manifest of a published (or deprecated) version: its files, their keys and checksums."""
        caller = Principal.of_service("dataset", ref.tenant_id)
        try:
            owner, found, files = await service.published_version(
                self.deps, caller, ref.dataset_id, ref.version_id
            )
        except ForgeError as error:
            raise _non_retryable(error) from error
        return resolved(self.deps, owner.modality, found, files)

    @activity.defn(name=PUBLISH_DERIVED_VERSION)
    async def publish_derived_version(self, request: PublishDerivedVersion) -> ResolvedVersion:
        """Create and publish a version from files already in object storage, with lineage."""
        key = request.request_id or idempotency_key()
        try:
            created = await service.publish_derived_version(self.deps, request, key)
            owner, found, files = await service.published_version(
                self.deps, Principal.of_service("dataset", request.tenant_id), created.dataset_id, created.id
            )
        except ForgeError as error:
            raise _non_retryable(error) from error
        return resolved(self.deps, owner.modality, found, files)

    def all(self) -> list[Callable[..., Any]]:
        return [self.resolve_version, self.publish_derived_version]


def resolved(deps: Deps, modality: str, found: DatasetVersion, files: list[VersionFile]) -> ResolvedVersion:
    return ResolvedVersion.model_validate(
        {
            "tenant_id": found.tenant,
            "dataset_id": found.dataset_id,
            "version_id": found.id,
            "number": found.number,
            "state": found.state,
            "modality": modality,
            "bucket": deps.store.bucket,
            "manifest_key": found.manifest_key,
            "manifest_sha256": found.manifest_sha256,
            "files": [ManifestFile.model_validate(f, from_attributes=True) for f in files],
            "item_count": found.item_count,
            "size_bytes": found.size_bytes,
            "parent_version_id": found.parent_version_id,
        }
    )
