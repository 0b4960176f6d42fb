"""The labeling service and a real dataset service, both on the real stack, shared by this module's tests
(each test uses its own dataset, template and project, so they do not see each other's data):

- the dataset service on a database, bucket and task queue of its own;
- the labeling service on its own database, bucket and task queue, calling the dataset activities on the
  dataset service's queue;
- a reader of the shared `forge.labeling.events` topic from the moment the module starts.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from botocore.exceptions import ClientError
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for
from forge_dataset.app import create_app as create_dataset_app
from forge_dataset.settings import DatasetSettings
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_labeling.app import create_app as create_labeling_app
from forge_labeling.settings import LabelingSettings

from tests.harness import service_settings, serving
from tests.waiting import eventually

TOPIC = topic_for("labeling")


@dataclass
class Services:
    dataset: httpx.AsyncClient
    labeling: httpx.AsyncClient
    labeling_bucket: str


class EventLog:
    """Events on the labeling topic since the module started, filtered by subject."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[EventEnvelope] = []

    async def _drain(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                self.seen.append(from_kafka(record.headers, record.value))

    async def of(self, subject: str, count: int) -> list[EventEnvelope]:
        """The events of `subject`, once at least `count` arrived (then one more poll, to catch extras)."""

        async def enough() -> list[EventEnvelope]:
            await self._drain()
            mine = [e for e in self.seen if e.subject == subject]
            return mine if len(mine) >= count else []

        await eventually(enough, timeout_s=30, what=f"{count} events of {subject}")
        await self._drain()
        return [e for e in self.seen if e.subject == subject]


async def _admin(settings: StackSettings, statement: str) -> None:
    admin = await asyncpg.connect(settings.pg_admin_dsn())
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _fresh_database(settings: StackSettings) -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _admin(settings, f'CREATE DATABASE "{name}"')
    try:
        yield settings.pg_admin_dsn(name)
    finally:
        await _admin(settings, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _remove_bucket(settings: StackSettings, name: str) -> None:
    async with s3_client(settings) as s3:
        try:
            await s3.head_bucket(Bucket=name)
        except ClientError:
            return  # nothing was ever written
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                await s3.delete_object(Bucket=name, Key=item["Key"])
        await s3.delete_bucket(Bucket=name)


async def _partitions(bootstrap: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])

        async def described() -> list[int]:
            topics = await admin.describe_topics([TOPIC])
            return sorted(p["partition"] for t in topics for p in t.get("partitions", []))

        return await eventually(described, what="the labeling topic's partitions")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def events(stack_settings: StackSettings) -> AsyncIterator[EventLog]:
    partitions = await _partitions(stack_settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack_settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, before anything is produced
        yield EventLog(consumer)
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def services(stack_settings: StackSettings, events: EventLog) -> AsyncIterator[Services]:
    dataset_bucket = f"test-ds-{uuid.uuid4().hex[:12]}"
    labeling_bucket = f"test-lb-{uuid.uuid4().hex[:12]}"
    async with _fresh_database(stack_settings) as dataset_db, _fresh_database(stack_settings) as labeling_db:
        dataset_settings = DatasetSettings(
            **service_settings(stack_settings, dataset_db, "dataset").model_dump(),
            dataset_bucket=dataset_bucket,
        )
        labeling_settings = LabelingSettings(
            **service_settings(stack_settings, labeling_db, "labeling").model_dump(),
            labeling_bucket=labeling_bucket,
            dataset_task_queue=str(dataset_settings.task_queue),
        )
        try:
            async with (
                serving(create_dataset_app(dataset_settings)) as dataset,
                serving(create_labeling_app(labeling_settings)) as labeling,
            ):
                yield Services(dataset=dataset, labeling=labeling, labeling_bucket=labeling_bucket)
        finally:
            await _remove_bucket(stack_settings, dataset_bucket)
            await _remove_bucket(stack_settings, labeling_bucket)
