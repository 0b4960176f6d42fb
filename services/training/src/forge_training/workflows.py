"""`TrainingJobWorkflow`: one fine-tuning job from queued to its end; `EvaluationJobWorkflow`: one
evaluation job. Orchestration only (all I/O is in
the activities); this module imports nothing heavy, since Temporal's sandbox re-imports it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.training import (
        CANCEL_EVALUATION,
        CANCEL_JOB,
        EVALUATION_WORKFLOW,
        FAIL_EVALUATION,
        FAIL_JOB,
        QUEUE_JOB,
        RUN_EVALUATION,
        RUN_TRAINING,
        WORKFLOW,
        EvaluationRequest,
        EvaluationResult,
        FailJob,
        JobRef,
        JobStatus,
        TrainingJobInput,
        TrainingOutcome,
    )

_SHORT = timedelta(seconds=30)
_SHORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=WORKFLOW)
class TrainingJobWorkflow:
    """queue -> (allocation, once the scheduler exists) -> run_training (retried, resuming) -> end.
    Cancelling the workflow cancels the run (the activity kills the runtime), then ends the job
    `cancelled`; a run that fails every attempt ends the job `failed`."""

    @workflow.run
    async def run(self, request: TrainingJobInput) -> TrainingOutcome:
        ref = JobRef(tenant_id=request.tenant_id, job_id=request.job_id)
        try:
            await workflow.execute_activity(
                QUEUE_JOB,
                ref,
                result_type=JobStatus,
                start_to_close_timeout=_SHORT,
                retry_policy=_SHORT_RETRY,
            )
            # Allocation step: once the scheduler service exists, request an allocation here
            # (scheduler.request_allocation, idempotent by the job's allocation request id) and wait
            # for it to be admitted before `run_training`. Not called yet: jobs run on the local worker.
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

    async def _end_cancelled(self, ref: JobRef) -> None:
        await workflow.execute_activity(
            CANCEL_JOB, ref, result_type=JobStatus, start_to_close_timeout=_SHORT, retry_policy=_SHORT_RETRY
        )

    async def _fail(self, ref: JobRef, error: ActivityError) -> TrainingOutcome:
        cause = error.cause or error
        message = f"training could not complete: {cause}"[:4000]
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
