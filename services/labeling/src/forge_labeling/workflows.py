"""The labeling service's workflows: orchestration only (all I/O is in activities); this module imports
nothing heavy, since Temporal's sandbox re-imports it.

- `ImportRecordsWorkflow`: resolve a dataset version through `dataset.resolve_version` on the dataset
  service's task queue.
- `ExportWorkflow`: write the accepted annotations as JSONL, publish them as a derived dataset version
  through `dataset.publish_derived_version`, then record the result (or the failure) on the export.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.dataset import (
        PUBLISH_DERIVED_VERSION,
        RESOLVE_VERSION,
        DatasetVersionRef,
        DerivedFile,
        PublishDerivedVersion,
        ResolvedVersion,
    )
    from forge_contracts.activities.labeling import (
        COMPLETE_EXPORT,
        EXPORT_OPERATION,
        EXPORT_WORKFLOW,
        FAIL_EXPORT,
        IMPORT_WORKFLOW,
        WRITE_EXPORT,
        ExportCompleted,
        ExportedFile,
        ExportFailed,
        ExportRef,
        ExportRequest,
        ExportStatus,
        ImportRecords,
        export_workflow_id,
    )

_SHORT = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))


@workflow.defn(name=IMPORT_WORKFLOW)
class ImportRecordsWorkflow:
    """Where a published dataset version's files are (bucket, keys, record counts)."""

    @workflow.run
    async def run(self, request: ImportRecords) -> ResolvedVersion:
        return await workflow.execute_activity(
            RESOLVE_VERSION,
            DatasetVersionRef(
                tenant_id=request.tenant_id, dataset_id=request.dataset_id, version_id=request.version_id
            ),
            result_type=ResolvedVersion,
            task_queue=request.dataset_task_queue,
            schedule_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )


@workflow.defn(name=EXPORT_WORKFLOW)
class ExportWorkflow:
    """write_export -> dataset.publish_derived_version (lineage to the source version) -> complete_export;
    any activity that fails for good ends the export `failed` with the reason."""

    @workflow.run
    async def run(self, request: ExportRequest) -> ExportStatus:
        ref = ExportRef(tenant_id=request.tenant_id, export_id=request.export_id)
        try:
            written = await workflow.execute_activity(
                WRITE_EXPORT,
                ref,
                result_type=ExportedFile,
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=5,
                ),
            )
            version = await workflow.execute_activity(
                PUBLISH_DERIVED_VERSION,
                PublishDerivedVersion(
                    tenant_id=written.tenant_id,
                    dataset_id=written.dataset_id,
                    parent_version_id=written.source_version_id,
                    operation=EXPORT_OPERATION,
                    parameters={
                        "project_id": written.project_id,
                        "export_id": written.export_id,
                        "format": "jsonl",
                        "label_field": written.label_field,
                        "record_count": written.record_count,
                    },
                    files=[
                        DerivedFile(
                            name=written.file_name, object_key=written.object_key, bucket=written.bucket
                        )
                    ],
                    actor=written.actor,
                    request_id=export_workflow_id(written.export_id),
                ),
                result_type=ResolvedVersion,
                task_queue=request.dataset_task_queue,
                start_to_close_timeout=timedelta(minutes=10),
                schedule_to_close_timeout=timedelta(minutes=30),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=5,
                ),
            )
        except ActivityError as error:
            cause = error.cause or error
            return await workflow.execute_activity(
                FAIL_EXPORT,
                ExportFailed(
                    tenant_id=ref.tenant_id, export_id=ref.export_id, error=f"export failed: {cause}"[:4000]
                ),
                result_type=ExportStatus,
                start_to_close_timeout=_SHORT,
                retry_policy=_RETRY,
            )
        return await workflow.execute_activity(
            COMPLETE_EXPORT,
            ExportCompleted(
                tenant_id=ref.tenant_id,
                export_id=ref.export_id,
                dataset_version_id=version.version_id,
                dataset_version_number=version.number,
            ),
            result_type=ExportStatus,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
