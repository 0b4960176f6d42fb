"""The dataset service running on the real stack: its own database, task queue and a fresh bucket it
creates itself; and a reader of its events on the shared `forge.dataset.events` topic."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from botocore.exceptions import ClientError
from fastapi import FastAPI
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for
from forge_dataset.app import create_app
from forge_dataset.objects import ObjectStore
from forge_dataset.service import Deps
from forge_dataset.settings import DatasetSettings
from forge_kit.runtime import ServiceRuntime
from forge_kit.stack_env import StackSettings

from tests.harness import service_settings, serving
from tests.services.dataset.hdfs import hdfs_url as hdfs_url  # a session fixture
from tests.services.dataset.mariadb import mariadb as mariadb  # a session fixture
from tests.waiting import eventually

TOPIC = topic_for("dataset")
PART_BYTES = 5 * 1024 * 1024


@dataclass
class DatasetService:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def runtime(self) -> ServiceRuntime:
        runtime: ServiceRuntime = self.app.state.runtime
        return runtime

    @property
    def store(self) -> ObjectStore:
        deps: Deps = self.app.state.deps
        return deps.store


class EventLog:
    """Events on the dataset topic from the moment it was created, filtered by subject."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[EventEnvelope] = []

    async def _drain(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                self.seen.append(from_kafka(record.headers, record.value))

    async def of(self, subject: str, count: int) -> list[EventEnvelope]:
        """The events of `subject`, once at least `count` arrived (then a little longer, to catch extras)."""

        async def enough() -> list[EventEnvelope]:
            await self._drain()
            mine = [e for e in self.seen if e.subject == subject]
            return mine if len(mine) >= count else []

        await eventually(enough, timeout_s=30, what=f"{count} events of {subject}")
        await self._drain()
        return [e for e in self.seen if e.subject == subject]


async def _topic_partitions(bootstrap: str) -> list[int]:
    """The dataset topic's partitions (the topic is created when missing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])

        async def described() -> list[int]:
            topics = await admin.describe_topics([TOPIC])
            return sorted(p["partition"] for t in topics for p in t.get("partitions", []))

        return await eventually(described, what="the dataset topic's partitions")
    finally:
        await admin.close()


@pytest.fixture
async def bucket(stack_settings: StackSettings) -> AsyncIterator[str]:
    """A bucket name nobody created yet (the service creates it); emptied and removed afterwards."""
    name = f"test-ds-{uuid.uuid4().hex[:12]}"
    yield name
    store = ObjectStore(
        DatasetSettings(
            **service_settings(stack_settings, "postgresql://unused", "dataset").model_dump(),
            dataset_bucket=name,
        )
    )
    async with store.client() as s3:
        try:
            await s3.head_bucket(Bucket=name)
        except ClientError:
            return  # the test never wrote anything
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                await s3.delete_object(Bucket=name, Key=item["Key"])
        uploads = await s3.list_multipart_uploads(Bucket=name)
        for upload in uploads.get("Uploads", []):
            await s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        await s3.delete_bucket(Bucket=name)


@pytest.fixture
async def events(stack_settings: StackSettings) -> AsyncIterator[EventLog]:
    partitions = await _topic_partitions(stack_settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack_settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, before the test produces anything
        yield EventLog(consumer)
    finally:
        await consumer.stop()


def dataset_settings(
    stack_settings: StackSettings, database: str, bucket: str, **extra: Any
) -> DatasetSettings:
    """The tests' dataset service settings on `database` and `bucket` (with `extra` settings)."""
    return DatasetSettings(
        **service_settings(stack_settings, database, "dataset").model_dump(),
        dataset_bucket=bucket,
        upload_part_bytes=PART_BYTES,
        import_allowed_networks=["127.0.0.0/8"],  # the imports' test server, as an admin would allow a mirror
        processing_shard_bytes=4096,  # several shards per test file: records numbered across them
        **extra,
    )


@pytest.fixture
async def dataset_service(
    stack_settings: StackSettings, database: str, bucket: str, events: EventLog
) -> AsyncIterator[DatasetService]:
    app = create_app(dataset_settings(stack_settings, database, bucket))
    async with serving(app) as http:
        yield DatasetService(app, http)
