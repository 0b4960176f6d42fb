"""A tiny workflow calling the delivery activity by name, as the training chain will (its own module:
Temporal's sandbox re-imports a workflow's module, so it imports nothing heavy)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.delivery import DELIVER_MODEL, DeliverModel, DeliveryResult


@workflow.defn
class DeliverTwice:
    """Calls `deliver_model` twice with the same input: the second call must find the first's order."""

    @workflow.run
    async def run(self, request: DeliverModel, queue: str) -> list[DeliveryResult]:
        results = []
        for _ in range(2):
            result = await workflow.execute_activity(
                DELIVER_MODEL,
                request,
                task_queue=queue,
                result_type=DeliveryResult,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
            results.append(result)
        return results
