"""Temporal plumbing: one way to connect (Pydantic payloads, OpenTelemetry propagation) and to build a
worker on a service's task queue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker


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


def idempotency_key() -> str:
    """Inside an activity: a key stable across Temporal's retries of this activity execution."""
    info = activity.info()
    return f"{info.workflow_run_id}-{info.activity_id}"


async def ping(client: Client) -> None:
    """Raise if the Temporal frontend is not serving."""
    if not await client.service_client.check_health():
        raise ConnectionError("temporal frontend is not serving")
