"""The delivery service on the real stack (own database, task queue, a fresh bucket for sources and
bundles, a temporary shared folder), the registry it asks (a real one, on its own database and task
queue), a reader of `forge.delivery.events`, and fake model directories registered as model versions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for, uuid7
from forge_delivery.app import create_app
from forge_delivery.runtime import DeliveryRuntime
from forge_delivery.settings import DeliverySettings
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings

from tests.harness import service_settings, serving
from tests.identity import Caller, as_service, as_user
from tests.services.delivery.workflows import DeliverTwice
from tests.services.registry.conftest import Registry, running_registry
from tests.waiting import eventually

TOPIC = topic_for("delivery")
ACME = as_user("alice", "acme")
GLOBEX = as_user("bob", "globex")
GATE = {"perplexity": {"max": 50}}

MODEL_FILES: dict[str, bytes] = {
    "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)) * 64,
    "config.json": b'{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64}',
    "generation_config.json": b'{"max_new_tokens": 64}',
    "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}',
    "tokenizer_config.json": b'{"tokenizer_class": "PreTrainedTokenizerFast"}',
    "special_tokens_map.json": b'{"eos_token": "</s>"}',
    "training_args.bin": b"not part of a bundle",
}


@dataclass
class DeliveryService:
    app: FastAPI
    http: httpx.AsyncClient
    stack: StackSettings
    bucket: str
    shared_dir: Path
    registry: Registry

    @property
    def runtime(self) -> DeliveryRuntime:
        runtime: DeliveryRuntime = self.app.state.runtime
        return runtime

    async def upload_model(self, files: dict[str, bytes] | None = None, tenant: str = "acme") -> str:
        """A merged model directory in the tenant's model area of the test bucket; returns its S3 prefix."""
        prefix = f"tenants/{tenant}/sources/{uuid.uuid4().hex[:8]}/merged/"
        async with s3_client(self.stack) as s3:
            for name, data in (MODEL_FILES if files is None else files).items():
                await s3.put_object(Bucket=self.bucket, Key=prefix + name, Body=data)
        return f"s3://{self.bucket}/{prefix}"

    async def version(
        self,
        files: dict[str, bytes] | None = None,
        *,
        until: str = "released",
        as_: Caller = ACME,
    ) -> dict[str, Any]:
        """A model directory uploaded and registered as a version of a new model project, taken through
        the release gate up to `until`: `registered`, `evaluation_failed`, `released` (passed the gate) or
        `overridden` (failed it, released by an approver). The version as the registry shows it, with
        `project_name`."""
        http, tenant = self.registry.http, as_.tenant
        assert tenant is not None
        name = f"support-bot-{uuid.uuid4().hex[:6]}"
        project = await http.post("/model-projects", json={"name": name, "gate": GATE}, headers=as_)
        assert project.status_code == 201, project.text
        source = await self.upload_model(files, tenant)
        created = await http.post(
            f"/model-projects/{project.json()['id']}/versions",
            json={"artifact_uri": source, "metrics": {"eval_loss": 0.5}},
            headers=as_,
        )
        assert created.status_code == 201, created.text
        version: dict[str, Any] = {**created.json(), "project_name": name}
        base = f"/model-projects/{version['project_id']}/versions/{version['id']}"
        if until == "registered":
            return version
        training = as_service("training", tenant, on_behalf_of=as_.username)
        evaluation_id = uuid7()
        assert (
            await http.post(
                f"{base}/evaluation/start", json={"evaluation_id": evaluation_id}, headers=training
            )
        ).status_code == 200
        perplexity = 80.0 if until in ("evaluation_failed", "overridden") else 12.5
        judged = await http.post(
            f"{base}/evaluation/result",
            json={"evaluation_id": evaluation_id, "metrics": {"perplexity": perplexity}},
            headers=training,
        )
        assert judged.status_code == 200, judged.text
        if until == "evaluation_failed":
            return {**version, "state": "evaluation_failed"}
        if until == "overridden":
            moved = await http.post(f"{base}/override-release", json={"reason": "within noise"}, headers=as_)
        else:
            moved = await http.post(f"{base}/release", json={}, headers=as_)
        assert moved.status_code == 200, moved.text
        return {**moved.json(), "project_name": name}

    async def registry_post(self, version: dict[str, Any], action: str, body: dict[str, Any]) -> None:
        """Move `version` in the registry (e.g. `deprecate`), as alice."""
        base = f"/model-projects/{version['project_id']}/versions/{version['id']}"
        moved = await self.registry.http.post(f"{base}/{action}", json=body, headers=ACME)
        assert moved.status_code == 200, moved.text

    async def read(self, uri_prefix: str, name: str) -> bytes:
        bucket, _, prefix = uri_prefix.removeprefix("s3://").partition("/")
        async with s3_client(self.stack) as s3:
            response = await s3.get_object(Bucket=bucket, Key=prefix + name)
            async with response["Body"] as body:
                data: bytes = await body.read()
        return data

    async def keys(self, uri_prefix: str) -> list[str]:
        bucket, _, prefix = uri_prefix.removeprefix("s3://").partition("/")
        async with s3_client(self.stack) as s3:
            listing = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"][len(prefix) :] for item in listing.get("Contents", []))

    async def settled(self, order_id: str, headers: dict[str, str] = ACME) -> dict[str, Any]:
        """The order once it reached a terminal state."""

        async def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = (
                await self.http.get(f"/delivery-orders/{order_id}", headers=headers)
            ).json()
            return body if body["state"] in {"delivered", "failed", "cancelled"} else None

        return await eventually(finished, timeout_s=30, what=f"order {order_id} to finish")


def order_request(model_version_id: str, **overrides: Any) -> dict[str, Any]:
    """An order for a model version, named by id only (the registry knows the rest)."""
    body: dict[str, Any] = {
        "model_version_id": model_version_id,
        "card": {
            "description": "A small support assistant tuned with LoRA.",
            "base_model": "forge/tiny-llama",
            "datasets": [
                {"name": "tickets", "version": "2", "content_hash": "sha256:" + "ab" * 32},
            ],
            "training_params": {"learning_rate": 0.0002, "epochs": 2, "lora_rank": 8},
            "metrics": {"rougeL": 0.4125, "bleu": 0.2731, "perplexity": 12.5},
            "license": "apache-2.0",
            "intended_use": "Answering customer support questions in English.",
            "limitations": "Trained on a small ticket sample; not for legal advice.",
        },
        "inference": {"max_new_tokens": 128, "temperature": 0.2, "dtype": "bfloat16", "device": "cpu"},
    }
    body.update(overrides)
    return body


class EventLog:
    """Events on `forge.delivery.events` from the moment it was opened."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[EventEnvelope] = []

    async def _drain(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.seen.extend(from_kafka(record.headers, record.value) for record in records)

    async def of(self, subject: str, count: int) -> list[EventEnvelope]:
        """The events of `subject`, once at least `count` arrived (then one more poll, to catch extras)."""

        async def enough() -> list[EventEnvelope]:
            await self._drain()
            mine = [e for e in self.seen if e.subject == subject]
            return mine if len(mine) >= count else []

        await eventually(enough, timeout_s=30, what=f"{count} events of {subject}")
        await self._drain()
        return [e for e in self.seen if e.subject == subject]


async def _topic_partitions(bootstrap: str) -> list[int]:
    """The topic's partitions (created first when missing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        try:
            await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass

        async def described() -> list[int]:
            (topic,) = await admin.describe_topics([TOPIC])
            return sorted(p["partition"] for p in topic["partitions"])

        return await eventually(described, timeout_s=10, what=f"partitions of {TOPIC}")
    finally:
        await admin.close()


@pytest.fixture
async def events(stack_settings: StackSettings) -> AsyncIterator[EventLog]:
    partitions = [TopicPartition(TOPIC, p) for p in await _topic_partitions(stack_settings.kafka_bootstrap)]
    consumer = AIOKafkaConsumer(bootstrap_servers=stack_settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # pin "now" before the test acts
        yield EventLog(consumer)
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def registry(stack_settings: StackSettings) -> AsyncIterator[Registry]:
    """The registry delivery asks, one for the module (every test registers versions of its own)."""
    async with running_registry(stack_settings) as running:
        yield running


@pytest.fixture
async def delivery(
    stack_settings: StackSettings, database: str, s3_bucket: str, tmp_path: Path, registry: Registry
) -> AsyncIterator[DeliveryService]:
    shared = tmp_path / "shared"
    settings = DeliverySettings.of(
        service_settings(stack_settings, database, "delivery"),
        delivery_bucket=s3_bucket,
        delivery_shared_dir=shared,
        registry_task_queue=registry.runtime.task_queue,
    )
    app = create_app(settings)
    app.state.runtime.register(workflows=[DeliverTwice])
    async with serving(app, base_url="http://delivery") as http:
        yield DeliveryService(app, http, stack_settings, s3_bucket, shared, registry)
