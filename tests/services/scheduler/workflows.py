"""A tiny workflow calling the scheduler's activities by name, as the training chain will."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.scheduler import (
        RELEASE_ALLOCATION,
        REQUEST_ALLOCATION,
        RUN_ON_ALLOCATION,
        AllocationGrant,
        AllocationRequest,
        ReleaseRequest,
        ReleaseResult,
        RunResult,
        RunSpec,
        Workload,
    )


@workflow.defn
class RunOnAllocation:
    """Request an allocation, run a workload on it, release it (a no-op once the workers ended)."""

    @workflow.run
    async def run(self, request: AllocationRequest, workload: Workload) -> tuple[RunResult, str]:
        grant = await workflow.execute_activity(
            REQUEST_ALLOCATION,
            request,
            result_type=AllocationGrant,
            start_to_close_timeout=timedelta(seconds=30),
        )
        result = await workflow.execute_activity(
            RUN_ON_ALLOCATION,
            RunSpec(
                tenant_id=request.tenant_id,
                allocation_id=grant.allocation_id,
                workload=workload,
                heartbeat_interval_s=0.2,
            ),
            result_type=RunResult,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=10),
        )
        released = await workflow.execute_activity(
            RELEASE_ALLOCATION,
            ReleaseRequest(tenant_id=request.tenant_id, allocation_id=grant.allocation_id),
            result_type=ReleaseResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result, released.state
