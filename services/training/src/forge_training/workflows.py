"""`TrainingJobWorkflow`: one fine-tuning job from queued to its end; `EvaluationJobWorkflow`: one
evaluation job; `ResolveInputsWorkflow`: the Forge ids a request names, resolved by the services that own
them. Orchestration only (all I/O is in the activities); this module imports nothing heavy, since
Temporal's sandbox re-imports it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities import dataset, registry, scheduler
    from forge_contracts.activities.training import (
        CANCEL_EVALUATION,
        CANCEL_JOB,
        EVALUATION_WORKFLOW,
        FAIL_EVALUATION,
        FAIL_JOB,
        QUEUE_JOB,
        RESOLVE_INPUTS_WORKFLOW,
        RUN_EVALUATION,
        RUN_TRAINING,
        WORKFLOW,
        EvaluationRequest,
        EvaluationResult,
        FailJob,
        InputsToResolve,
        JobRef,
        JobScheduling,
        JobStatus,
        QueueJob,
        ResolvedInputs,
        TrainingJobInput,
        TrainingOutcome,
    )

_SHORT = timedelta(seconds=30)
_SHORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=WORKFLOW)
class TrainingJobWorkflow:
    """[allocation requested] -> queued -> [admitted, attached] -> run_training (retried, resuming) -> end
    -> [allocation given back]. A job with `scheduling` asks the scheduler itself and gives the allocation
    back however the run ends; one started with `allocation_id` runs on the caller's admitted allocation
    (the caller gives it back); one with neither runs unscheduled. Cancelling the workflow cancels the run
    (the activity kills the runtime), then ends the job `cancelled`; a run that fails every attempt, or that
    the scheduler never admits, ends the job `failed`."""

    @workflow.run
    async def run(self, request: TrainingJobInput) -> TrainingOutcome:
        ref = JobRef(tenant_id=request.tenant_id, job_id=request.job_id)
        owned: str | None = None  # an allocation requested here, so given back here
        try:
            allocation, queue, admitted = request.allocation_id, None, request.allocation_id is not None
            if request.scheduling is not None and allocation is None:
                grant = await self._request(request, request.scheduling, wait_s=0)
                owned = allocation = grant.allocation_id
                queue, admitted = grant.queue, grant.admitted
                if grant.state == "rejected":
                    return await self._fail_with(
                        ref, f"the scheduler rejected the run: {grant.rejection_reason}"
                    )
            await workflow.execute_activity(
                QUEUE_JOB,
                QueueJob(tenant_id=ref.tenant_id, job_id=ref.job_id, allocation_id=allocation, queue=queue),
                result_type=JobStatus,
                start_to_close_timeout=_SHORT,
                retry_policy=_SHORT_RETRY,
            )
            if request.scheduling is not None and owned is not None and not admitted:
                grant = await self._request(
                    request, request.scheduling, wait_s=request.scheduling.wait_for_admission_s
                )
                if not grant.admitted:
                    reason = grant.rejection_reason or f"the allocation is {grant.state}"
                    return await self._fail_with(ref, f"the scheduler did not admit the run: {reason}")
            if allocation is not None:
                await workflow.execute_activity(
                    scheduler.ATTACH_WORKLOAD,
                    scheduler.AttachWorkload(
                        tenant_id=ref.tenant_id, allocation_id=allocation, runner=f"training-job/{ref.job_id}"
                    ),
                    task_queue=scheduler.TASK_QUEUE,
                    result_type=scheduler.AllocationGrant,
                    start_to_close_timeout=_SHORT,
                    retry_policy=_SHORT_RETRY,
                )
            return await workflow.execute_activity(
                RUN_TRAINING,
                ref,
                result_type=TrainingOutcome,
                start_to_close_timeout=timedelta(seconds=request.run_timeout_s),
                heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=request.run_attempts,
                ),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except Exception as error:
            if not is_cancelled_exception(error):
                if not isinstance(error, ActivityError):
                    raise
                return await self._fail(ref, error)
            await self._end_cancelled(ref)
            raise
        except BaseException as error:  # asyncio.CancelledError: cancelled while between activities
            if is_cancelled_exception(error):
                await self._end_cancelled(ref)
            raise
        finally:
            if owned is not None:
                await workflow.execute_activity(
                    scheduler.RELEASE_ALLOCATION,
                    scheduler.ReleaseRequest(
                        tenant_id=ref.tenant_id,
                        allocation_id=owned,
                        reason=f"training job {ref.job_id} ended",
                    ),
                    task_queue=scheduler.TASK_QUEUE,
                    result_type=scheduler.ReleaseResult,
                    start_to_close_timeout=_SHORT,
                    retry_policy=_SHORT_RETRY,
                )

    async def _request(
        self, request: TrainingJobInput, scheduling: JobScheduling, *, wait_s: float
    ) -> scheduler.AllocationGrant:
        """The job's allocation (the same one on every call: keyed by the job), waiting up to `wait_s`
        while it is queued."""
        return await workflow.execute_activity(
            scheduler.REQUEST_ALLOCATION,
            scheduler.AllocationRequest(
                request_key=f"training-job:{request.job_id}",
                tenant_id=request.tenant_id,
                project_id=scheduling.project_id,
                priority=scheduling.priority,
                gang_size=scheduling.gang_size,
                per_worker=scheduling.per_worker,
                workload_kind="training_job",
                workload_id=request.job_id,
                actor="service:training",
                wait_for_admission_s=wait_s,
            ),
            task_queue=scheduler.TASK_QUEUE,
            result_type=scheduler.AllocationGrant,
            start_to_close_timeout=timedelta(seconds=wait_s + 300),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_SHORT_RETRY,
        )

    async def _end_cancelled(self, ref: JobRef) -> None:
        await workflow.execute_activity(
            CANCEL_JOB, ref, result_type=JobStatus, start_to_close_timeout=_SHORT, retry_policy=_SHORT_RETRY
        )

    async def _fail(self, ref: JobRef, error: ActivityError) -> TrainingOutcome:
        cause = error.cause or error
        return await self._fail_with(ref, f"training could not complete: {cause}")

    async def _fail_with(self, ref: JobRef, message: str) -> TrainingOutcome:
        message = message[:4000]
        await workflow.execute_activity(
            FAIL_JOB,
            FailJob(tenant_id=ref.tenant_id, job_id=ref.job_id, error=message),
            result_type=JobStatus,
            start_to_close_timeout=_SHORT,
            retry_policy=_SHORT_RETRY,
        )
        return TrainingOutcome(job_id=ref.job_id, state="failed", error=message)


_EVALUATION_TIMEOUT = timedelta(hours=6)
_EVALUATION_HEARTBEAT = timedelta(seconds=30)


@workflow.defn(name=EVALUATION_WORKFLOW)
class EvaluationJobWorkflow:
    """run_evaluation (queued -> running -> succeeded, retried while the failure is transient) -> end.
    The activity fails the evaluation itself when the runtime fails (non-retryable); when every
    attempt failed otherwise the workflow ends it `failed`; cancelling the workflow kills the runtime
    and ends it `cancelled`. A failed evaluation fails the workflow with the reason."""

    @workflow.run
    async def run(self, request: EvaluationRequest) -> EvaluationResult:
        if request.evaluation_job_id is None:
            raise ApplicationError("the workflow runs an existing evaluation job", non_retryable=True)
        ref = JobRef(tenant_id=request.tenant_id, job_id=request.evaluation_job_id)
        try:
            return await workflow.execute_activity(
                RUN_EVALUATION,
                request,
                result_type=EvaluationResult,
                start_to_close_timeout=_EVALUATION_TIMEOUT,
                heartbeat_timeout=_EVALUATION_HEARTBEAT,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=3,
                ),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except Exception as error:
            if is_cancelled_exception(error):
                await self._end(CANCEL_EVALUATION, ref)
                raise
            if not isinstance(error, ActivityError):
                raise
            cause = error.cause or error
            message = f"evaluation could not complete: {cause}"[:4000]
            await self._end(
                FAIL_EVALUATION, FailJob(tenant_id=ref.tenant_id, job_id=ref.job_id, error=message)
            )
            raise ApplicationError(message, type="EvaluationFailed", non_retryable=True) from error
        except BaseException as error:  # asyncio.CancelledError: cancelled while between activities
            if is_cancelled_exception(error):
                await self._end(CANCEL_EVALUATION, ref)
            raise

    async def _end(self, activity: str, argument: JobRef | FailJob) -> None:
        await workflow.execute_activity(
            activity,
            argument,
            result_type=JobStatus,
            start_to_close_timeout=_SHORT,
            retry_policy=_SHORT_RETRY,
        )


_RESOLVE = {
    "schedule_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
    ),
}


@workflow.defn(name=RESOLVE_INPUTS_WORKFLOW)
class ResolveInputsWorkflow:
    """The dataset version, base model and model version a request names, each resolved (concurrently)
    by the activity of the service that owns it, which checks the tenant: another tenant's resource is
    `NotFound`. The training API runs it before it records a job, so a job only ever reads files its
    tenant's own Forge resources point to. A refusal fails the workflow with the owner's error."""

    @workflow.run
    async def run(self, request: InputsToResolve) -> ResolvedInputs:
        tenant = request.tenant_id
        calls: dict[str, Any] = {}
        if request.dataset_id is not None and request.dataset_version_id is not None:
            calls["dataset"] = workflow.execute_activity(
                dataset.RESOLVE_VERSION,
                dataset.DatasetVersionRef(
                    tenant_id=tenant, dataset_id=request.dataset_id, version_id=request.dataset_version_id
                ),
                task_queue=request.dataset_task_queue,
                result_type=dataset.ResolvedVersion,
                **_RESOLVE,
            )
        if request.base_model_id is not None:
            calls["base_model"] = workflow.execute_activity(
                registry.RESOLVE_BASE_MODEL,
                registry.BaseModelRef(tenant_id=tenant, base_model_id=request.base_model_id),
                task_queue=request.registry_task_queue,
                result_type=registry.ResolvedBaseModel,
                **_RESOLVE,
            )
        if request.model_version_id is not None:
            calls["model_version"] = workflow.execute_activity(
                registry.RESOLVE_MODEL_VERSION,
                registry.ModelVersionRef(tenant_id=tenant, version_id=request.model_version_id),
                task_queue=request.registry_task_queue,
                result_type=registry.ResolvedModelVersion,
                **_RESOLVE,
            )
        results = await asyncio.gather(*calls.values())
        return ResolvedInputs(**dict(zip(calls, results, strict=True)))
