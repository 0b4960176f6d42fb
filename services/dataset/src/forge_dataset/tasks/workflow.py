"""The workflows of dataset tasks: orchestration only (the work is the `dataset.run_task` activity); this
module imports nothing heavy, since Temporal's sandbox re-imports it.

`DatasetTaskWorkflow` runs a task on the dataset worker (splits, diffs, imports: I/O-bound work the
service does itself). `DatasetProcessWorkflow` runs a processing task as a workload under the scheduler's
quota: it asks for the allocation, waits for admission (the task stays `queued`), marks it running for the
task, runs the task (whose activity starts the data runtime as its own process, Ray sized to the
allocation) and gives the allocation back however the task ends."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities import registry, scheduler
    from forge_contracts.activities.dataset import (
        END_TASK,
        PROCESS_WORKFLOW,
        RUN_TASK,
        TASK_WORKFLOW,
        ScheduledTaskRef,
        TaskEnd,
        TaskOutcome,
        TaskRef,
    )

_SHORT = timedelta(seconds=30)
_SHORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
RUN_TIMEOUT = timedelta(hours=24)
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
"""A task's activity heartbeats every couple of seconds; a cancel reaches it within about 4 s."""
CALLER_ERRORS = ["NotFound", "Conflict", "Unprocessable", "Forbidden"]
"""Errors retrying cannot mend: the task fails at once with the reason."""
_RESOLVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["NotFound", "InvalidRequest", "Conflict"],
)


async def run_to_end(ref: TaskRef) -> TaskOutcome:
    """run_task (retried: a worker that died mid-task hands it to another, which starts it again) -> the
    task ends succeeded from inside the activity; a task that fails every attempt, or fails for a reason
    retrying cannot mend, ends `failed` with that reason; cancelling cancels the activity, then ends the
    task `cancelled`."""
    try:
        return await workflow.execute_activity(
            RUN_TASK,
            TaskRef(tenant_id=ref.tenant_id, task_id=ref.task_id, models=ref.models),
            result_type=TaskOutcome,
            start_to_close_timeout=RUN_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=30),
                maximum_attempts=3,
                non_retryable_error_types=CALLER_ERRORS,
            ),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
    except Exception as error:
        if is_cancelled_exception(error):
            await end(ref, "cancelled")
            raise
        if not isinstance(error, ActivityError):
            raise
        return await end(ref, "failed", failure_reason(error))
    except BaseException as error:  # asyncio.CancelledError: cancelled between activities
        if is_cancelled_exception(error):
            await end(ref, "cancelled")
        raise


def failure_reason(error: ActivityError) -> str:
    """Why an activity failed, as its error said it."""
    cause = error.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or error)


async def end(ref: TaskRef, outcome: str, error: str | None = None) -> TaskOutcome:
    return await workflow.execute_activity(
        END_TASK,
        TaskEnd(
            tenant_id=ref.tenant_id,
            task_id=ref.task_id,
            outcome="cancelled" if outcome == "cancelled" else "failed",
            error=None if error is None else error[:4000],
        ),
        result_type=TaskOutcome,
        start_to_close_timeout=_SHORT,
        retry_policy=_SHORT_RETRY,
    )


@workflow.defn(name=TASK_WORKFLOW)
class DatasetTaskWorkflow:
    """A task run on the dataset worker, to its end (`run_to_end`)."""

    @workflow.run
    async def run(self, ref: TaskRef) -> TaskOutcome:
        return await run_to_end(ref)


@workflow.defn(name=PROCESS_WORKFLOW)
class DatasetProcessWorkflow:
    """[allocation requested] -> [admitted] -> [attached] -> `run_to_end` -> [allocation given back]. A
    request the scheduler rejects, or that is not admitted within `wait_for_admission_s`, fails the task
    with the scheduler's reason; cancelling while it waits ends it `cancelled`."""

    @workflow.run
    async def run(self, request: ScheduledTaskRef) -> TaskOutcome:
        ref = TaskRef(tenant_id=request.tenant_id, task_id=request.task_id)
        allocation: str | None = None
        try:
            if request.registered_models:
                models, problem = await self._models(request)
                if problem is not None:
                    return await end(ref, "failed", problem)
                ref = TaskRef(tenant_id=request.tenant_id, task_id=request.task_id, models=models)
            grant = await self._request(request, wait_s=0)
            allocation = grant.allocation_id
            if grant.state == "rejected":
                return await end(ref, "failed", f"the scheduler rejected the task: {grant.rejection_reason}")
            if not grant.admitted:
                grant = await self._request(request, wait_s=request.scheduling.wait_for_admission_s)
                if not grant.admitted:
                    reason = grant.rejection_reason or f"the allocation is {grant.state}"
                    return await end(ref, "failed", f"the scheduler did not admit the task: {reason}")
            await workflow.execute_activity(
                scheduler.ATTACH_WORKLOAD,
                scheduler.AttachWorkload(
                    tenant_id=ref.tenant_id, allocation_id=allocation, runner=f"dataset-task/{ref.task_id}"
                ),
                task_queue=scheduler.TASK_QUEUE,
                result_type=scheduler.AllocationGrant,
                start_to_close_timeout=_SHORT,
                retry_policy=_SHORT_RETRY,
            )
            return await run_to_end(ref)
        except Exception as error:
            if is_cancelled_exception(error):
                await end(ref, "cancelled")
                raise
            if not isinstance(error, ActivityError):
                raise
            return await end(ref, "failed", f"the scheduler could not run the task: {failure_reason(error)}")
        except BaseException as error:
            if is_cancelled_exception(error):
                await end(ref, "cancelled")
            raise
        finally:
            if allocation is not None:
                await workflow.execute_activity(
                    scheduler.RELEASE_ALLOCATION,
                    scheduler.ReleaseRequest(
                        tenant_id=ref.tenant_id,
                        allocation_id=allocation,
                        reason=f"dataset task {ref.task_id} ended",
                    ),
                    task_queue=scheduler.TASK_QUEUE,
                    result_type=scheduler.ReleaseResult,
                    start_to_close_timeout=_SHORT,
                    retry_policy=_SHORT_RETRY,
                )

    async def _models(self, request: ScheduledTaskRef) -> tuple[dict[str, str], str | None]:
        """Where the registry's models the task names are, resolved in its tenant; or why one is not (another
        tenant's, or one that does not exist, fails the task)."""
        found: dict[str, str] = {}
        for model in request.registered_models:
            try:
                if model.base_model_id is not None:
                    base = await workflow.execute_activity(
                        registry.RESOLVE_BASE_MODEL,
                        registry.BaseModelRef(tenant_id=request.tenant_id, base_model_id=model.base_model_id),
                        task_queue=request.registry_task_queue,
                        result_type=registry.ResolvedBaseModel,
                        start_to_close_timeout=_SHORT,
                        retry_policy=_RESOLVE_RETRY,
                    )
                    found[model.key] = base.uri
                else:
                    assert model.model_version_id is not None
                    version = await workflow.execute_activity(
                        registry.RESOLVE_MODEL_VERSION,
                        registry.ModelVersionRef(
                            tenant_id=request.tenant_id, version_id=model.model_version_id
                        ),
                        task_queue=request.registry_task_queue,
                        result_type=registry.ResolvedModelVersion,
                        start_to_close_timeout=_SHORT,
                        retry_policy=_RESOLVE_RETRY,
                    )
                    found[model.key] = version.artifact_uri
            except ActivityError as error:
                return found, f"{model}: {failure_reason(error)}"
        return found, None

    async def _request(self, request: ScheduledTaskRef, *, wait_s: float) -> scheduler.AllocationGrant:
        """The task's allocation (the same one on every call: keyed by the task)."""
        scheduling = request.scheduling
        return await workflow.execute_activity(
            scheduler.REQUEST_ALLOCATION,
            scheduler.AllocationRequest(
                request_key=f"dataset-task:{request.task_id}",
                tenant_id=request.tenant_id,
                project_id=scheduling.project_id,
                priority=scheduling.priority,
                per_worker=scheduling.per_worker,
                workload_kind="dataset_task",
                workload_id=request.task_id,
                actor="service:dataset",
                wait_for_admission_s=wait_s,
            ),
            task_queue=scheduler.TASK_QUEUE,
            result_type=scheduler.AllocationGrant,
            start_to_close_timeout=timedelta(seconds=wait_s + 300),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_SHORT_RETRY,
        )
