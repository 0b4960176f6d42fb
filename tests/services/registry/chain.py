"""A tiny workflow driving the registry's activities by name, as the training chain would: register,
record the evaluation, release, mark delivered. Each step's outcome (or refusal type) is returned."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities.registry import (
        MARK_DELIVERED,
        RECORD_EVALUATION,
        REGISTER_MODEL_VERSION,
        RELEASE_VERSION,
        DeliveredVersion,
        EvaluationOutcome,
        GateDecision,
        MarkDelivered,
        RegisteredVersion,
        RegisterVersion,
        ReleasedVersion,
        ReleaseRequest,
    )

TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100))


@workflow.defn
class GateChain:
    @workflow.run
    async def run(
        self, register: RegisterVersion, outcome: EvaluationOutcome, delivery: MarkDelivered
    ) -> list[str]:
        steps: list[str] = []
        registered = await workflow.execute_activity(
            REGISTER_MODEL_VERSION,
            register,
            result_type=RegisteredVersion,
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        steps.append(f"registered {registered.version} created={registered.created}")
        vid = registered.version_id
        decision = await workflow.execute_activity(
            RECORD_EVALUATION,
            outcome.model_copy(update={"version_id": vid}),
            result_type=GateDecision,
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        steps.append(f"evaluation passed={decision.passed} may_release={decision.may_release}")
        try:
            released = await workflow.execute_activity(
                RELEASE_VERSION,
                ReleaseRequest(tenant_id=register.tenant_id, version_id=vid),
                result_type=ReleasedVersion,
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
            steps.append(f"release {released.state}")
        except ActivityError as error:
            steps.append(f"release refused {_kind(error)}")
        try:
            delivered = await workflow.execute_activity(
                MARK_DELIVERED,
                delivery.model_copy(update={"version_id": vid}),
                result_type=DeliveredVersion,
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
            steps.append(f"delivery {delivered.state}")
        except ActivityError as error:
            steps.append(f"delivery refused {_kind(error)}")
        return steps


def _kind(error: ActivityError) -> str:
    cause = error.cause
    return cause.type or "" if isinstance(cause, ApplicationError) else type(cause).__name__
