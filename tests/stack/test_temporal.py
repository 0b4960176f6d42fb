"""Temporal: the dev server runs a workflow whose activity executes on a worker started here."""

from __future__ import annotations

import uuid
from datetime import timedelta

from forge_kit.stack_env import StackSettings
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def shout(text: str) -> str:
    return text.upper() + "!"


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(shout, text, start_to_close_timeout=timedelta(seconds=30))


async def test_a_workflow_runs_its_activity_on_a_worker(
    stack_settings: StackSettings, task_queue: str
) -> None:
    client = await Client.connect(
        stack_settings.temporal_address, namespace=stack_settings.temporal_namespace
    )
    workflow_id = f"smoke-{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[ShoutWorkflow], activities=[shout]):
        result = await client.execute_workflow(
            ShoutWorkflow.run,
            "forge",
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
    assert result == "FORGE!"
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds = {event.event_type for event in history.events}
    from temporalio.api.enums.v1 import EventType

    assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in kinds
