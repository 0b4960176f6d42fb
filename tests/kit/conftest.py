"""Fixtures for the kit's tests: a toy service on its own database and topic, running the real kit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from forge_contracts.envelope import topic_for
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings
from forge_kit.stack_env import StackSettings

from tests.harness import service_settings, serving
from tests.kit.toy.app import MIGRATIONS, PROJECTION, project, router


@dataclass
class Toy:
    runtime: ServiceRuntime
    http: httpx.AsyncClient

    @property
    def service(self) -> str:
        return self.runtime.settings.service

    @property
    def topic(self) -> str:
        return topic_for(self.service)


def toy_settings(stack_settings: StackSettings, database: str) -> ServiceSettings:
    # Callers are resolved through the session's test directory (the `directory` fixture sets
    # FORGE_DIRECTORY_URL): every test that runs the toy asks for it.
    settings = service_settings(stack_settings, database, f"toy{uuid.uuid4().hex[:10]}")
    # The toy borrows the dataset service's client identity to ask the directory about its callers.
    dataset = service_settings(stack_settings, database, "dataset")
    return settings.model_copy(
        update={"oidc_client_id": "forge-dataset", "client_secret": dataset.client_secret}
    )


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


@asynccontextmanager
async def running_toy(
    stack_settings: StackSettings,
    database: str,
    *,
    run_relay: bool = True,
    setup: Callable[[ServiceRuntime], None] | None = None,
) -> AsyncIterator[Toy]:
    """A toy service (HTTP + outbox relay + inbox projection) running on the real stack; `setup` may add
    consumers, workflows and activities before it starts."""
    settings = toy_settings(stack_settings, database)
    await create_topic(settings.kafka_bootstrap, topic_for(settings.service))
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS, run_relay=run_relay)
    runtime.subscribe(
        topics=[topic_for(settings.service)], consumer=f"{settings.service}.{PROJECTION}", handler=project
    )
    if setup is not None:
        setup(runtime)
    async with serving(runtime.http_app(routers=[router]), base_url="http://toy") as http:
        yield Toy(runtime, http)


@pytest.fixture
async def toy(stack_settings: StackSettings, database: str, directory: str) -> AsyncIterator[Toy]:
    async with running_toy(stack_settings, database) as running:
        yield running
