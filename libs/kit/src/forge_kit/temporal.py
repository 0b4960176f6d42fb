"""Temporal plumbing: one way to connect (Pydantic payloads, OpenTelemetry propagation), to build a
worker on a service's task queue, and to replay recorded workflow histories against the current code
(a change that would break a running workflow fails the replay)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from forge_kit.observability import configure


def task_queue(service: str) -> str:
    """The task queue a service's worker listens on (`forge-<service>`)."""
    return f"forge-{service}"


async def connect(address: str, namespace: str = "default") -> Client:
    """A client whose payloads are Pydantic models and whose calls carry the current trace."""
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        plugins=[OpenTelemetryPlugin(add_temporal_spans=True)],
    )


def create_worker(
    client: Client,
    queue: str,
    *,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    graceful_shutdown_s: float = 20.0,
) -> Worker:
    """A worker for `queue`; activities finish (up to the grace period) when it shuts down."""
    return Worker(
        client,
        task_queue=queue,
        workflows=list(workflows),
        activities=list(activities),
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
    )


async def replay(history: WorkflowHistory, workflows: Sequence[type]) -> None:
    """Replay `history` on `workflows` as a worker would run them (same payloads, same plugin); raises
    `temporalio.workflow.NondeterminismError` when the code no longer reproduces the recorded commands."""
    configure("workflow-replay")  # the plugin needs the replay-safe tracer provider the services install
    replayer = Replayer(
        workflows=list(workflows),
        data_converter=pydantic_data_converter,
        plugins=[OpenTelemetryPlugin(add_temporal_spans=True)],
    )
    await replayer.replay_workflow(history)


def idempotency_key() -> str:
    """Inside an activity: a key stable across Temporal's retries of this activity execution."""
    info = activity.info()
    return f"{info.workflow_run_id}-{info.activity_id}"


async def ping(client: Client) -> None:
    """Raise if the Temporal frontend is not serving."""
    if not await client.service_client.check_health():
        raise ConnectionError("temporal frontend is not serving")
