"""The delivery service's workflows: orchestration only, so this module imports nothing heavy (Temporal's
sandbox re-imports it).

- `CheckVersionWorkflow`: ask the registry (`describe_version` on its task queue) about the model version
  an order delivers: that it exists in the tenant, where its artifact is, and whether it may be delivered.
  The HTTP API and the `deliver_model` activity run it before an order is created, and the order's runner
  again before it packages (the version's state may have changed meanwhile).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.registry import DESCRIBE_VERSION, DescribeVersion, VersionDescription
    from forge_contracts.events.base import Actor, Id, TenantId

CHECK_VERSION_WORKFLOW = "delivery.check_version"


class VersionCheck(BaseModel):
    """Which version to ask about, for whom, and where the registry listens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: TenantId
    version_id: Id
    actor: Actor | None = None
    registry_task_queue: str = Field(min_length=1)


@workflow.defn(name=CHECK_VERSION_WORKFLOW)
class CheckVersionWorkflow:
    @workflow.run
    async def run(self, check: VersionCheck) -> VersionDescription:
        return await workflow.execute_activity(
            DESCRIBE_VERSION,
            DescribeVersion(tenant_id=check.tenant_id, version_id=check.version_id, actor=check.actor),
            result_type=VersionDescription,
            task_queue=check.registry_task_queue,
            schedule_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
            ),
        )
