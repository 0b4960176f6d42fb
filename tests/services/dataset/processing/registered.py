"""The registry beside the dataset service, for pipelines and transformers that name its models: a
registry on a queue of its own, a dataset service resolving models there, and models built here put in
the tenant's model area and registered as base models of the hub."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from forge_dataset.app import create_app
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings

from tests.harness import serving
from tests.services.dataset.conftest import DatasetService, dataset_settings
from tests.services.dataset.test_dataset_service import ACME
from tests.services.registry.conftest import Registry, running_registry


@pytest.fixture
async def with_registry(
    stack_settings: StackSettings, database: str, bucket: str
) -> AsyncIterator[tuple[DatasetService, Registry]]:
    """A registry (its worker on a queue of its own) and a dataset service that resolves models there."""
    async with running_registry(stack_settings) as registry:
        app = create_app(
            dataset_settings(
                stack_settings, database, bucket, registry_task_queue=registry.runtime.task_queue
            )
        )
        async with serving(app) as http:
            yield DatasetService(app, http), registry


async def register_model(
    registry: Registry, stack_settings: StackSettings, bucket: str, folder: Path, architecture: str
) -> str:
    """The model folder uploaded to acme's model area in `bucket` and registered as a base model; its id."""
    prefix = f"tenants/acme/models/{folder.name}-{uuid.uuid4().hex[:8]}/"
    files = sorted(folder.iterdir())  # noqa: ASYNC240 (a few local files, listed once)
    async with s3_client(stack_settings) as s3:
        for path in files:
            await s3.upload_file(str(path), bucket, prefix + path.name)
    answer = await registry.http.post(
        "/base-models",
        headers=ACME,
        json={
            "name": f"{folder.name}-{uuid.uuid4().hex[:8]}",
            "version": "1",
            "uri": f"s3://{bucket}/{prefix}",
            "architecture": architecture,
            "parameter_count": 20_000,
            "licence": "apache-2.0",
        },
    )
    assert answer.status_code == 201, answer.text
    model_id: str = answer.json()["id"]
    return model_id
