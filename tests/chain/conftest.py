"""What the chain tests share: the demo's inputs (built once per module by the training runtime's CLI,
exactly as `forge demo` builds them), a fresh database per service, and the services' apps on them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from forge_cli.demo import DemoInputs, DemoSetup, build_inputs, set_up
from forge_dataset.app import create_app as dataset_app
from forge_delivery.app import create_app as delivery_app
from forge_kit.stack_env import StackSettings
from forge_registry.app import create_app as registry_app
from forge_scheduler.app import create_app as scheduler_app
from forge_training.app import create_app as training_app

from tests.harness import service_settings, serving
from tests.identity import as_user

TENANT = as_user("alice", "acme")
ADMIN = as_user("ada", "acme")  # a platform admin: sets the scheduler project's quota
SERVICES = ("dataset", "scheduler", "training", "registry", "delivery")


async def create_databases(stack_settings: StackSettings, names: tuple[str, ...]) -> dict[str, str]:
    """A new, empty database per service name; returns their DSNs."""
    admin = await asyncpg.connect(stack_settings.pg_admin_dsn())
    try:
        created = {}
        for name in names:
            database = f"chain_{name}_{uuid.uuid4().hex[:8]}"
            await admin.execute(f'CREATE DATABASE "{database}"')
            created[name] = stack_settings.pg_admin_dsn(database)
        return created
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> DemoInputs:
    """The demo's inputs, built by the training runtime's CLI exactly as `forge demo` builds them."""
    return build_inputs(tmp_path_factory.mktemp("chain-inputs"))


def service_apps(
    stack_settings: StackSettings, databases: dict[str, str], jobs_dir: Path
) -> dict[str, FastAPI]:
    """The apps of the services named in `databases`, each on its database, with its worker on the
    service's real task queue (the chain calls activities there)."""
    factories = {
        "dataset": dataset_app,
        "scheduler": lambda settings: scheduler_app(settings, jobs_dir=jobs_dir),
        "training": training_app,
        "registry": registry_app,
        "delivery": delivery_app,
    }
    return {
        name: factories[name](
            service_settings(stack_settings, database, name).model_copy(update={"task_queue": None})
        )
        for name, database in databases.items()
    }


@pytest.fixture(scope="session", autouse=True)
def _signed_in(directory: str) -> str:
    """The chain's services resolve their callers through the test directory."""
    return directory


@dataclass
class Platform:
    http: dict[str, httpx.AsyncClient]
    setup: DemoSetup


@asynccontextmanager
async def running_platform(
    stack_settings: StackSettings, bucket: str, inputs: DemoInputs, jobs_dir: Path
) -> AsyncIterator[Platform]:
    """The five services, each on a fresh database, with their workers on the real task queues, and the
    demo's entities created through their APIs."""
    databases = await create_databases(stack_settings, SERVICES)
    apps = service_apps(stack_settings, databases, jobs_dir)
    async with AsyncExitStack() as running:
        http = {name: await running.enter_async_context(serving(app)) for name, app in apps.items()}
        setup = await set_up(http, stack_settings, inputs, caller=TENANT, admin=ADMIN, bucket=bucket)
        yield Platform(http, setup)
