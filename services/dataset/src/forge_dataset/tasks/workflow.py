"""The workflow of one dataset task: orchestration only (the work is the `dataset.run_task` activity);
this module imports nothing heavy, since Temporal's sandbox re-imports it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.dataset import (
        END_TASK,
        RUN_TASK,
        TASK_WORKFLOW,
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


@workflow.defn(name=TASK_WORKFLOW)
class DatasetTaskWorkflow:
    """run_task (retried: a worker that died mid-task hands it to another, which starts it again) ->
    the task ends succeeded from inside the activity; a task that fails every attempt, or fails for a
    reason retrying cannot mend, ends `failed` with that reason; cancelling the workflow cancels the
    activity, then ends the task `cancelled`."""

    @workflow.run
    async def run(self, ref: TaskRef) -> TaskOutcome:
        try:
            return await workflow.execute_activity(
                RUN_TASK,
                ref,
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
                await self._end(ref, "cancelled")
                raise
            if not isinstance(error, ActivityError):
                raise
            cause = error.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            return await self._end(ref, "failed", reason)
        except BaseException as error:  # asyncio.CancelledError: cancelled between activities
            if is_cancelled_exception(error):
                await self._end(ref, "cancelled")
            raise

    async def _end(self, ref: TaskRef, outcome: str, error: str | None = None) -> TaskOutcome:
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
