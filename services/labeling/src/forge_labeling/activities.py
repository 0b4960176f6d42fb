"""Temporal activities on the labeling task queue (names and models in forge_contracts.activities.labeling),
run by `ExportWorkflow`. Each is idempotent by the export id (see the contracts module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forge_contracts.activities.labeling import (
    COMPLETE_EXPORT,
    FAIL_EXPORT,
    WRITE_EXPORT,
    ExportCompleted,
    ExportedFile,
    ExportFailed,
    ExportRef,
    ExportStatus,
)
from forge_kit.errors import ForgeError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_labeling import service


def _non_retryable(error: ForgeError) -> ApplicationError:
    """A caller's mistake (not found, wrong state): retrying cannot help."""
    return ApplicationError(error.detail, type=type(error).__name__, non_retryable=True)


class LabelingActivities:
    """The activities, bound to the service's database and bucket."""

    def __init__(self, deps: service.Deps) -> None:
        self.deps = deps

    @activity.defn(name=WRITE_EXPORT)
    async def write_export(self, ref: ExportRef) -> ExportedFile:
        """Write the project's accepted annotations (record + label) as JSONL to the labeling bucket."""
        try:
            return await service.write_export(self.deps, ref)
        except ForgeError as error:
            raise _non_retryable(error) from error

    @activity.defn(name=COMPLETE_EXPORT)
    async def complete_export(self, done: ExportCompleted) -> ExportStatus:
        """Record the dataset version the export became."""
        try:
            return await service.complete_export(self.deps, done)
        except ForgeError as error:
            raise _non_retryable(error) from error

    @activity.defn(name=FAIL_EXPORT)
    async def fail_export(self, failed: ExportFailed) -> ExportStatus:
        """Record why the export could not complete."""
        try:
            return await service.fail_export(self.deps, failed)
        except ForgeError as error:
            raise _non_retryable(error) from error

    def all(self) -> list[Callable[..., Any]]:
        return [self.write_export, self.complete_export, self.fail_export]
