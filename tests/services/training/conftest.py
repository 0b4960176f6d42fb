"""The training service on the real stack, with a tiny base model and sample data built by the training
runtime's own CLI (once per module). Jobs name Forge resources by id, so each module also runs the real
dataset service and registry (each on a database and task queue of its own) where the sample data is a
published dataset version and the tiny model a base model of the hub, in tenant `acme` and in `globex`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for
from forge_dataset.app import create_app as dataset_app
from forge_dataset.settings import DatasetSettings
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_registry.app import create_app as registry_app
from forge_training.app import create_app
from forge_training.service import Deps
from forge_training.settings import TrainingSettings

from tests.harness import service_settings, serving
from tests.identity import as_user
from tests.waiting import eventually

TOPIC = topic_for("training")
ACME = as_user("alice", "acme")
GLOBEX = as_user("bob", "globex")
PROJECT = "01956900-aaaa-7bbb-8ccc-000000000001"
TINY_BASE = {"vocab_size": 300, "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}


def run_runtime_cli(command: str, spec: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Run `python -m forge_training_runtime <command>`; returns its result line."""
    spec_file = work_dir / f"{command}.json"
    spec_file.write_text(json.dumps(spec))
    completed = subprocess.run(
        [sys.executable, "-m", "forge_training_runtime", command, "--spec", str(spec_file)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-2000:]
    last = json.loads(completed.stdout.splitlines()[-1])
    assert last["kind"] == "result", last
    result: dict[str, Any] = last["result"]
    return result


@dataclass(frozen=True)
class LocalInputs:
    train_file: Path
    validation_file: Path
    base_model_dir: Path
    test_file: Path


@pytest.fixture(scope="module")
def local_inputs(tmp_path_factory: pytest.TempPathFactory) -> LocalInputs:
    """Sample data and a tiny base model, made by the runtime's `sample-data` and `build-base`."""
    root = tmp_path_factory.mktemp("training-inputs")
    splits = run_runtime_cli("sample-data", {"out_dir": str(root / "data")}, root)
    run_runtime_cli(
        "build-base",
        {"corpus_files": [splits["train_file"]], "out_dir": str(root / "base"), **TINY_BASE},
        root,
    )
    return LocalInputs(
        Path(splits["train_file"]), Path(splits["validation_file"]), root / "base", Path(splits["test_file"])
    )


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    assert response.status_code < 300, f"{what}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True)
class Published:
    """A published dataset version: its ids and its files' object keys by name."""

    dataset_id: str
    version_id: str
    keys: dict[str, str]


@dataclass
class Catalogue:
    """The dataset service and the registry the training service resolves ids through."""

    dataset: httpx.AsyncClient
    registry: httpx.AsyncClient
    bucket: str  # the dataset service's files, and the hub's base model
    dataset_task_queue: str
    registry_task_queue: str

    async def publish(self, headers: dict[str, str], files: dict[str, bytes]) -> Published:
        """A new dataset with one published version holding `files` (name -> JSONL bytes)."""
        dataset = _ok(
            await self.dataset.post(
                "/datasets",
                headers=headers,
                json={
                    "name": f"instructions-{uuid.uuid4().hex[:8]}",
                    "modality": "text",
                    "secrecy": "internal",
                    "licence": "cc0-1.0",
                    "source": "the training runtime's sample data",
                },
            ),
            "creating a dataset",
        )
        version = _ok(
            await self.dataset.post(f"/datasets/{dataset['id']}/versions", headers=headers), "a version"
        )
        base = f"/datasets/{dataset['id']}/versions/{version['id']}"
        for name, content in files.items():
            _ok(await self.dataset.put(f"{base}/files/{name}", content=content, headers=headers), name)
        published = _ok(await self.dataset.post(f"{base}/publish", headers=headers), "publishing")
        keys = {file["name"]: file["object_key"] for file in published["files"]}
        return Published(dataset["id"], version["id"], keys)

    async def register_base_model(self, headers: dict[str, str], uri: str) -> str:
        model = _ok(
            await self.registry.post(
                "/base-models",
                headers=headers,
                json={
                    "name": f"tiny-{uuid.uuid4().hex[:8]}",
                    "version": "1",
                    "uri": uri,
                    "architecture": "LlamaForCausalLM",
                    "parameter_count": 100_000,
                    "licence": "apache-2.0",
                },
            ),
            "registering the base model",
        )
        model_id: str = model["id"]
        return model_id


@dataclass(frozen=True)
class Inputs:
    """The Forge resources a job names: a published dataset version and a base model of the hub, in
    `acme` (the tests' tenant) and in `globex` (another tenant, whose resources acme must not reach)."""

    catalogue: Catalogue
    data: Published
    base_model_id: str
    base_model_uri: str
    theirs: Published
    their_base_model_id: str

    @property
    def bucket(self) -> str:
        return self.catalogue.bucket


async def _database(stack_settings: StackSettings, name: str) -> str:
    admin = await asyncpg.connect(stack_settings.pg_admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return stack_settings.pg_admin_dsn(name)


async def _drop(stack_settings: StackSettings, name: str) -> None:
    admin = await asyncpg.connect(stack_settings.pg_admin_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def catalogue(stack_settings: StackSettings) -> AsyncIterator[Catalogue]:
    """The dataset service and the registry, each on a fresh database and a task queue of its own, and
    a bucket for their files (emptied and removed afterwards)."""
    suffix = uuid.uuid4().hex[:8]
    bucket, names = f"test-catalogue-{suffix}", (f"test_dataset_{suffix}", f"test_registry_{suffix}")
    async with s3_client(stack_settings) as s3:
        await s3.create_bucket(Bucket=bucket)
    dataset_db, registry_db = [await _database(stack_settings, name) for name in names]
    dataset_settings = service_settings(stack_settings, dataset_db, "dataset")
    registry_settings = service_settings(stack_settings, registry_db, "registry")
    try:
        async with AsyncExitStack() as running:
            dataset = await running.enter_async_context(
                serving(
                    dataset_app(DatasetSettings(**dataset_settings.model_dump(), dataset_bucket=bucket)),
                    base_url="http://dataset",
                )
            )
            registry = await running.enter_async_context(
                serving(registry_app(registry_settings, reports_bucket=bucket), base_url="http://registry")
            )
            assert dataset_settings.task_queue is not None and registry_settings.task_queue is not None
            yield Catalogue(
                dataset, registry, bucket, dataset_settings.task_queue, registry_settings.task_queue
            )
    finally:
        for name in names:
            await _drop(stack_settings, name)
        async with s3_client(stack_settings) as s3:
            while listing := (await s3.list_objects_v2(Bucket=bucket)).get("Contents", []):
                for item in listing:
                    await s3.delete_object(Bucket=bucket, Key=item["Key"])
            await s3.delete_bucket(Bucket=bucket)


def sample_files(local: LocalInputs) -> dict[str, bytes]:
    return {
        "train.jsonl": local.train_file.read_bytes(),
        "validation.jsonl": local.validation_file.read_bytes(),
        "test.jsonl": local.test_file.read_bytes(),
    }


@pytest.fixture(scope="module")
async def inputs(local_inputs: LocalInputs, catalogue: Catalogue, stack_settings: StackSettings) -> Inputs:
    """The sample data published as a dataset version and the tiny model registered in the hub, in acme
    and in globex."""
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    uris = {}
    async with s3_client(stack_settings) as s3:
        for tenant in ("acme", "globex"):  # each tenant's copy in its own model area
            prefix = f"tenants/{tenant}/hub/{name}/"
            for path in sorted(local_inputs.base_model_dir.iterdir()):
                await s3.upload_file(str(path), catalogue.bucket, prefix + path.name)
            uris[tenant] = f"s3://{catalogue.bucket}/{prefix}"
    files = sample_files(local_inputs)
    return Inputs(
        catalogue,
        await catalogue.publish(ACME, files),
        await catalogue.register_base_model(ACME, uris["acme"]),
        uris["acme"],
        await catalogue.publish(GLOBEX, files),
        await catalogue.register_base_model(GLOBEX, uris["globex"]),
    )


def job_body(inputs: Inputs, **overrides: Any) -> dict[str, Any]:
    """A quick LoRA job on the tiny model: 12 steps, evaluation and a checkpoint every 4."""
    body: dict[str, Any] = {
        "name": "tiny-lora",
        "project_id": PROJECT,
        "base_model": {"id": inputs.base_model_id},
        "dataset": {
            "dataset_id": inputs.data.dataset_id,
            "version_id": inputs.data.version_id,
            "train_file": "train.jsonl",
            "validation_file": "validation.jsonl",
        },
        "data_format": "alpaca",
        "hyperparameters": {
            "max_steps": 12,
            "learning_rate": 0.02,
            "lr_schedule": "constant",
            "batch_size": 16,
            "eval_every_steps": 4,
            "checkpoint_every_steps": 4,
        },
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


@dataclass
class TrainingService:
    app: FastAPI
    http: httpx.AsyncClient
    bucket: str

    @property
    def deps(self) -> Deps:
        deps: Deps = self.app.state.deps
        return deps

    async def create(self, body: dict[str, Any], headers: dict[str, str] = ACME) -> dict[str, Any]:
        response = await self.http.post("/training-jobs", json=body, headers=headers)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    async def get(self, job_id: str, headers: dict[str, str] = ACME) -> dict[str, Any]:
        response = await self.http.get(f"/training-jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    async def wait_for(
        self, job_id: str, predicate: Any, *, what: str, timeout_s: float = 90
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            job = await self.get(job_id)
            return job if predicate(job) else None

        found: dict[str, Any] = await eventually(probe, timeout_s=timeout_s, interval_s=0.2, what=what)
        return found

    async def wait_state(self, job_id: str, state: str, timeout_s: float = 90) -> dict[str, Any]:
        return await self.wait_for(
            job_id, lambda job: job["state"] == state, what=f"job {job_id} {state}", timeout_s=timeout_s
        )

    async def logs(self, job_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(f"/training-jobs/{job_id}/logs", params=params, headers=ACME)
        assert response.status_code == 200, response.text
        lines: list[dict[str, Any]] = response.json()["lines"]
        return lines


@pytest.fixture
async def training(
    stack_settings: StackSettings, database: str, s3_bucket: str, tmp_path: Path, catalogue: Catalogue
) -> AsyncIterator[TrainingService]:
    settings = TrainingSettings(
        **service_settings(stack_settings, database, "training").model_dump(),
        training_bucket=s3_bucket,
        heartbeat_timeout_s=3.0,
        progress_interval_s=0.2,
        run_attempts=2,
        work_dir=tmp_path,
        dataset_task_queue=catalogue.dataset_task_queue,
        registry_task_queue=catalogue.registry_task_queue,
    )
    app = create_app(settings)
    async with serving(app, base_url="http://training") as http:
        yield TrainingService(app, http, s3_bucket)


class EventLog:
    """Events on the training topic from the moment the test started, filtered by subject."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[EventEnvelope] = []

    async def _drain(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.seen.extend(from_kafka(record.headers, record.value) for record in records)

    async def of(self, subject: str, count: int) -> list[EventEnvelope]:
        """The events of `subject`, once at least `count` arrived (then one more drain, to catch extras)."""

        async def enough() -> list[EventEnvelope]:
            await self._drain()
            mine = [e for e in self.seen if e.subject == subject]
            return mine if len(mine) >= count else []

        await eventually(enough, timeout_s=30, what=f"{count} events of {subject}")
        await self._drain()
        return [e for e in self.seen if e.subject == subject]


async def _ensure_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer) -> Any:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(TOPIC)


@pytest.fixture
async def events(stack_settings: StackSettings) -> AsyncIterator[EventLog]:
    await _ensure_topic(stack_settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack_settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await eventually(lambda: _partitions(consumer), what="the training topic's partitions")
        tps = [TopicPartition(TOPIC, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, before the test produces anything
        yield EventLog(consumer)
    finally:
        await consumer.stop()
