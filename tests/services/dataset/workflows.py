"""A tiny workflow that calls one dataset activity by name on the service's task queue, as another
service's workflow would (its own module: Temporal's sandbox re-imports it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel


class ActivityCall(BaseModel):
    activity: str
    task_queue: str
    payload: dict[str, Any]


@workflow.defn
class CallDatasetActivity:
    @workflow.run
    async def run(self, call: ActivityCall) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            call.activity,
            call.payload,
            task_queue=call.task_queue,
            result_type=dict,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200)),
        )
        return result
