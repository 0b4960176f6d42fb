"""Running a Forge service in a test: its settings on the test's own database and Temporal queue, and an
HTTP client on its app with the app's lifespan (migrations, consumers, relay, worker) running."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from forge_kit.settings import ServiceSettings
from forge_kit.stack_env import StackSettings


def service_settings(stack_settings: StackSettings, database: str, service: str) -> ServiceSettings:
    """Settings for `service` on the real stack, with a fresh database and a task queue of its own."""
    return ServiceSettings(
        service=service,
        database_url=database,
        kafka_bootstrap=stack_settings.kafka_bootstrap,
        temporal_address=stack_settings.temporal_address,
        temporal_namespace=stack_settings.temporal_namespace,
        s3_endpoint=stack_settings.s3_endpoint,
        s3_access_key=stack_settings.s3_access_key,
        s3_secret_key=stack_settings.s3_secret_key.get_secret_value(),
        s3_region=stack_settings.s3_region,
        task_queue=f"forge-{service}-{uuid.uuid4().hex[:8]}",
        shutdown_grace_s=5.0,
    )


@asynccontextmanager
async def serving(app: FastAPI, base_url: str = "http://forge") -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and yield an HTTP client talking to it in-process."""
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http
