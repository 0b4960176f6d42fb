"""Temporal plumbing: one way to connect (Pydantic payloads, OpenTelemetry propagation), to build a
worker on a service's task queue, and to replay recorded workflow histories against the current code
(a change that would break a running workflow fails the replay)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, Worker

from forge_kit.observability import configure

PING_RETRY_S = 0.25


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


TRANSIENT = frozenset({RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
"""Answers a busy or just-restarted frontend gives to one call: asked again, it serves."""


async def ping(client: Client, timeout_s: float = 5.0) -> None:
    """Raise if the Temporal frontend is not serving within `timeout_s`. A transient answer (`TRANSIENT`:
    the frontend cancelled the call under load, or the connection is being re-established) is asked again
    until the deadline, so one unlucky call does not mark a serving service not ready."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        left = deadline - loop.time()
        try:
            if await client.service_client.check_health(timeout=timedelta(seconds=max(left, 0.1))):
                return
            failure: Exception = ConnectionError("temporal frontend is not serving")
        except RPCError as error:
            if error.status not in TRANSIENT:
                raise
            failure = error
        if loop.time() + PING_RETRY_S >= deadline:
            raise failure
        await asyncio.sleep(PING_RETRY_S)
