"""The training service on the real stack, with a tiny base model and sample data built by the training
runtime's own CLI (once per module) and uploaded to each test's bucket."""

from __future__ import annotations

import json
import subprocess
import sys
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
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_training.app import create_app
from forge_training.service import Deps
from forge_training.settings import TrainingSettings

from tests.harness import service_settings, serving
from tests.waiting import eventually

TOPIC = topic_for("training")
ACME = {"x-forge-tenant": "acme", "x-forge-user": "alice"}
GLOBEX = {"x-forge-tenant": "globex", "x-forge-user": "bob"}
PROJECT = "01956900-aaaa-7bbb-8ccc-000000000001"
DATASET_VERSION = "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60"
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


@dataclass(frozen=True)
class Inputs:
    """The inputs in object storage, as a job names them."""

    bucket: str
    base_model_uri: str
    train_key: str
    validation_key: str
    test_key: str


@pytest.fixture
async def inputs(local_inputs: LocalInputs, s3_bucket: str, stack_settings: StackSettings) -> Inputs:
    async with s3_client(stack_settings) as s3:
        for path in sorted(local_inputs.base_model_dir.iterdir()):
            await s3.upload_file(str(path), s3_bucket, f"models/tiny/{path.name}")
        await s3.upload_file(str(local_inputs.train_file), s3_bucket, "datasets/v1/train.jsonl")
        await s3.upload_file(str(local_inputs.validation_file), s3_bucket, "datasets/v1/validation.jsonl")
        await s3.upload_file(str(local_inputs.test_file), s3_bucket, "datasets/v1/test.jsonl")
    return Inputs(
        s3_bucket,
        f"s3://{s3_bucket}/models/tiny/",
        "datasets/v1/train.jsonl",
        "datasets/v1/validation.jsonl",
        "datasets/v1/test.jsonl",
    )


def job_body(inputs: Inputs, **overrides: Any) -> dict[str, Any]:
    """A quick LoRA job on the tiny model: 12 steps, evaluation and a checkpoint every 4."""
    body: dict[str, Any] = {
        "name": "tiny-lora",
        "project_id": PROJECT,
        "base_model": {"uri": inputs.base_model_uri},
        "dataset": {
            "version_id": DATASET_VERSION,
            "bucket": inputs.bucket,
            "train_key": inputs.train_key,
            "validation_key": inputs.validation_key,
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
    stack_settings: StackSettings, database: str, s3_bucket: str, tmp_path: Path
) -> AsyncIterator[TrainingService]:
    settings = TrainingSettings(
        **service_settings(stack_settings, database, "training").model_dump(),
        training_bucket=s3_bucket,
        heartbeat_timeout_s=3.0,
        progress_interval_s=0.2,
        run_attempts=2,
        work_dir=tmp_path,
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
