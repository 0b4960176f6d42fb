"""The registry running on the real stack for this module's tests: one database, one report bucket, one
Temporal task queue (with the test workflow registered); the tests act in tenant acme, each in model
projects of its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for
from forge_kit.objects import s3_client
from forge_kit.runtime import ServiceRuntime
from forge_kit.stack_env import StackSettings
from forge_registry import api
from forge_registry.app import build_runtime
from forge_registry.reports import ReportStore

from tests.harness import service_settings, serving
from tests.identity import grant
from tests.services.registry.chain import GateChain

TOPIC = topic_for("registry")


@dataclass
class Registry:
    runtime: ServiceRuntime
    http: httpx.AsyncClient
    bucket: str
    stack: StackSettings


async def _admin(stack: StackSettings, statement: str) -> None:
    conn = await asyncpg.connect(stack.pg_admin_dsn())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _ensure_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def registry(stack_settings: StackSettings) -> AsyncIterator[Registry]:
    async with running_registry(stack_settings) as running:
        yield running


@asynccontextmanager
async def running_registry(stack_settings: StackSettings) -> AsyncIterator[Registry]:
    """A registry on a database, report bucket and task queue of its own (also for the delivery tests)."""
    name = f"test_registry_{uuid.uuid4().hex[:10]}"
    bucket = f"test-registry-{uuid.uuid4().hex[:10]}"
    await _admin(stack_settings, f'CREATE DATABASE "{name}"')
    await _ensure_topic(stack_settings.kafka_bootstrap)
    settings = service_settings(stack_settings, stack_settings.pg_admin_dsn(name), "registry")
    reports = ReportStore(settings, bucket)
    runtime = build_runtime(settings, reports)
    runtime.register(workflows=[GateChain])
    app = runtime.http_app(routers=[api.router])
    app.state.reports = reports
    try:
        async with serving(app) as http:
            yield Registry(runtime, http, bucket, stack_settings)
    finally:
        await _admin(stack_settings, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _drop_bucket(stack_settings, bucket)


async def _drop_bucket(stack: StackSettings, bucket: str) -> None:
    async with s3_client(stack) as s3:
        try:
            listing = await s3.list_objects_v2(Bucket=bucket)
        except Exception:  # never created: nothing to clean
            return
        for item in listing.get("Contents", []):
            await s3.delete_object(Bucket=bucket, Key=item["Key"])
        await s3.delete_bucket(Bucket=bucket)


@pytest.fixture
def tenant() -> str:
    """The tenant the tests act in (members: alice, bob, ... with every role but ml-engineer and viewer,
    see tests/conftest.py); tests keep apart by their own model projects."""
    return "acme"


ENGINEER = "rex"
"""A member of acme who is only an ml-engineer: builds and releases, may not set gates or approve."""


@pytest.fixture(scope="module")
async def engineer(directory: str) -> str:
    await asyncio.to_thread(grant, directory, "acme", ENGINEER, ["ml-engineer"])
    return ENGINEER


async def _partitions(bootstrap: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([TOPIC])
    finally:
        await admin.close()
    return sorted(int(p["partition"]) for p in described[0]["partitions"])


class EventReader:
    """Reads the registry's topic from the moment it started (the topic is shared, so filter by subject)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.seen: list[EventEnvelope] = []

    async def start(self) -> None:
        await self.consumer.start()
        partitions = [TopicPartition(TOPIC, p) for p in await _partitions(self.bootstrap)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self.consumer.position(partition)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def of(self, subjects: Iterable[str], count: int, timeout_s: float = 20.0) -> list[EventEnvelope]:
        """Exactly the events about `subjects`, once `count` arrived (and nothing more shortly after)."""
        wanted = set(subjects)
        deadline = time.monotonic() + timeout_s
        while True:
            mine = [e for e in self.seen if e.subject in wanted]
            if len(mine) >= count or time.monotonic() > deadline:
                break
            await self._poll(500)
        await self._poll(300)  # a surplus event (a duplicate) would show up now
        return [e for e in self.seen if e.subject in wanted]

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                self.seen.append(from_kafka(record.headers, record.value))


@pytest.fixture
async def events(registry: Registry) -> AsyncIterator[EventReader]:
    reader = EventReader(registry.stack.kafka_bootstrap)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()
