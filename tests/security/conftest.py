"""All six services in-process, once for the security tests: each on a fresh database, bucket and task
queue of its own (wired to each other's queues), resolving callers from the test directory, with the
callers the tests act as: one user per role in a fresh tenant, a user with every tenant role, another
tenant's user, a platform admin and a service identity.

The apps run with their lifespans (migrations, relay, consumers, Temporal worker) on an event loop
thread of their own for the whole session; tests call them synchronously through it (`Forge.request`),
so the matrix test and schemathesis' generated requests reach the same running services. (Schemathesis'
own ASGI transport is not used: its pytest plugin ends every ASGI lifespan after each test.)
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from botocore.exceptions import ClientError
from fastapi import FastAPI
from forge_dataset.app import create_app as dataset_app
from forge_dataset.settings import DatasetSettings
from forge_delivery.app import create_app as delivery_app
from forge_delivery.settings import DeliverySettings
from forge_kit.objects import s3_client
from forge_kit.policy import GRANTABLE_ROLES, SERVICE_ACTIONS, Action, Role, permits
from forge_kit.settings import ServiceSettings
from forge_kit.stack_env import StackSettings
from forge_labeling.app import create_app as labeling_app
from forge_labeling.settings import LabelingSettings
from forge_registry.app import create_app as registry_app
from forge_scheduler.app import create_app as scheduler_app
from forge_training.app import create_app as training_app
from forge_training.settings import TrainingSettings

from tests.harness import service_settings, serving
from tests.identity import Caller, as_service, as_user, grant

SERVICES = ("dataset", "labeling", "training", "registry", "scheduler", "delivery")
ROUTES_FILE = Path(__file__).with_name("routes.json")
UPDATE_ROUTES_ENV = "FORGE_UPDATE_ROUTES"


GENERATED_REQUESTS: Counter[str] = Counter()
"""Requests schemathesis made, per operation (the run's summary says how many)."""
GENERATED_ANSWERS: Counter[int] = Counter()
"""Their answers' status codes."""
GENERATED_SECONDS: Counter[str] = Counter()
"""Time spent answering them, per operation."""
GENERATED_REFUSED: Counter[str] = Counter()
"""403s, per operation: a caller allowed the action refused by the service's own rule."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not GENERATED_REQUESTS:
        return
    per_service: Counter[str] = Counter()
    for label, count in GENERATED_REQUESTS.items():
        per_service[label.split()[0]] += count
    total, seconds = sum(per_service.values()), sum(GENERATED_SECONDS.values())
    write = terminalreporter.write_line
    write(f"generated requests: {dict(per_service)}, {total} in all, answered in {seconds:.0f}s")
    write(f"answered: {dict(sorted(GENERATED_ANSWERS.items()))}")
    slowest = GENERATED_SECONDS.most_common(6)
    write("slowest: " + ", ".join(f"{op} {s:.0f}s/{GENERATED_REQUESTS[op]}" for op, s in slowest))
    write(f"refused (403): {dict(GENERATED_REFUSED.most_common())}")


@dataclass(frozen=True)
class Route:
    """One operation of one service and the action it requires (`x-forge-action`)."""

    service: str
    method: str
    path: str
    action: str

    @property
    def label(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def checked_in_routes() -> list[Route]:
    """The routes of tests/security/routes.json (the matrix the tests walk)."""
    if not ROUTES_FILE.exists():
        return []
    return [Route(**row) for row in json.loads(ROUTES_FILE.read_text())]


def openapi_routes(documents: Mapping[str, dict[str, Any]]) -> list[Route]:
    """Every operation that requires an action, as the services' OpenAPI documents name them."""
    found = []
    for service, document in documents.items():
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if isinstance(operation, dict) and "x-forge-action" in operation:
                    found.append(Route(service, method.upper(), path, operation["x-forge-action"]))
    return sorted(found, key=lambda r: (SERVICES.index(r.service), r.path, r.method))


def write_routes(routes: list[Route]) -> None:
    rows = [
        json.dumps({"service": r.service, "method": r.method, "path": r.path, "action": r.action})
        for r in routes
    ]
    ROUTES_FILE.write_text("[\n  " + ",\n  ".join(rows) + "\n]\n")  # a row per route: diffs read well


@dataclass(frozen=True)
class People:
    """Who the security tests act as."""

    tenant: str  # a fresh tenant
    other_tenant: str  # another fresh tenant
    by_role: Mapping[Role, Caller]  # one user per role, holding only it (platform-admin: ada)
    everything: Caller  # every role a tenant grants, in `tenant`
    outsider: Caller  # every role a tenant grants, in `other_tenant` only
    service: Caller  # a Forge service identity, acting in `tenant`
    platform_admin: Caller  # ada, in `tenant`

    def for_action(self, action: Action) -> Caller:
        """The caller schemathesis acts as on a route requiring `action`: the user with every tenant role,
        else a service identity for service-only work, else the platform admin."""
        if permits(GRANTABLE_ROLES, action):
            return self.everything
        if action in SERVICE_ACTIONS:
            return self.service
        return self.platform_admin


REQUEST_TIMEOUT_S = 60


@dataclass
class Forge:
    """The six running services, reached through the event loop thread they run on."""

    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    portal: BlockingPortal
    people: People

    def request(self, service: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request to `service`, answered in full (a minute at most)."""

        async def send() -> httpx.Response:
            with anyio.fail_after(REQUEST_TIMEOUT_S):
                return await self.clients[service].request(method, url, **kwargs)

        return self.portal.call(send)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session", autouse=True)
def _signed_in(directory: str) -> str:
    """The services under test resolve their callers through the test directory."""
    return directory


@pytest.fixture(scope="session")
def people(directory: str) -> People:
    """Users in two fresh tenants, granted through the test directory (the Keycloak users are created on
    first use and kept: `sec-<role>`, `sec-everything`, `sec-outsider`)."""
    tenant, other = _unique("sec-"), _unique("sec-other-")
    by_role: dict[Role, Caller] = {Role.PLATFORM_ADMIN: as_user("ada", tenant)}
    for role in sorted(GRANTABLE_ROLES):
        user = f"sec-{role.value}"
        grant(directory, tenant, user, [role.value])
        by_role[role] = as_user(user, tenant)
    everything = sorted(role.value for role in GRANTABLE_ROLES)
    grant(directory, tenant, "sec-everything", everything)
    grant(directory, other, "sec-outsider", everything)
    return People(
        tenant=tenant,
        other_tenant=other,
        by_role=by_role,
        everything=as_user("sec-everything", tenant),
        outsider=as_user("sec-outsider", other),
        service=as_service("training", tenant, on_behalf_of="sec-everything"),
        platform_admin=as_user("ada", tenant),
    )


async def _admin(stack_settings: StackSettings, statement: str) -> None:
    connection = await asyncpg.connect(stack_settings.pg_admin_dsn())
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _remove_bucket(stack_settings: StackSettings, name: str) -> None:
    async with s3_client(stack_settings) as s3:
        try:
            await s3.head_bucket(Bucket=name)
        except ClientError:
            return  # nothing was ever written
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                await s3.delete_object(Bucket=name, Key=item["Key"])
        uploads = await s3.list_multipart_uploads(Bucket=name)
        for upload in uploads.get("Uploads", []):
            await s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        await s3.delete_bucket(Bucket=name)


@dataclass(frozen=True)
class Resources:
    """Per service: a fresh database's DSN and the name of a bucket nobody uses (created on first write)."""

    databases: dict[str, str]
    buckets: dict[str, str]


@pytest.fixture(scope="session")
async def resources(stack_settings: StackSettings) -> AsyncIterator[Resources]:
    """A fresh database and bucket name per service; dropped and removed at the end."""
    names = {service: _unique(f"sec_{service}_") for service in SERVICES}
    buckets = {service: _unique(f"sec-{service}-") for service in SERVICES}
    for name in names.values():
        await _admin(stack_settings, f'CREATE DATABASE "{name}"')
    try:
        yield Resources({s: stack_settings.pg_admin_dsn(n) for s, n in names.items()}, buckets)
    finally:
        for name in names.values():
            await _admin(stack_settings, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for bucket in buckets.values():
            await _remove_bucket(stack_settings, bucket)


def _apps(stack_settings: StackSettings, resources: Resources, jobs_dir: Path) -> dict[str, FastAPI]:
    settings = {s: service_settings(stack_settings, resources.databases[s], s) for s in SERVICES}
    queues = {s: str(settings[s].task_queue) for s in SERVICES}
    buckets = resources.buckets
    return {
        "dataset": dataset_app(
            DatasetSettings(**settings["dataset"].model_dump(), dataset_bucket=buckets["dataset"])
        ),
        "labeling": labeling_app(
            LabelingSettings(
                **settings["labeling"].model_dump(),
                labeling_bucket=buckets["labeling"],
                dataset_task_queue=queues["dataset"],
            )
        ),
        "training": training_app(
            TrainingSettings(
                **settings["training"].model_dump(),
                training_bucket=buckets["training"],
                dataset_task_queue=queues["dataset"],
                registry_task_queue=queues["registry"],
                work_dir=jobs_dir / "training",
            )
        ),
        "registry": registry_app(settings["registry"], reports_bucket=buckets["registry"]),
        "scheduler": scheduler_app(settings["scheduler"], jobs_dir=jobs_dir / "scheduler"),
        "delivery": delivery_app(
            DeliverySettings.of(
                settings["delivery"],
                delivery_bucket=buckets["delivery"],
                delivery_shared_dir=jobs_dir / "delivery",
                registry_task_queue=queues["registry"],
            )
        ),
    }


def documented_apis() -> dict[str, dict[str, Any]]:
    """The services' OpenAPI documents, from apps built (never started) on placeholder settings: what
    schemathesis generates requests from when it collects the tests, before any service runs."""
    placeholder = {
        "oidc_issuer": "http://identity.invalid/realms/forge",
        "directory_url": "http://directory.invalid",
        "database_url": "postgresql://forge@database.invalid/forge",
        "kafka_bootstrap": "kafka.invalid:9092",
        "temporal_address": "temporal.invalid:7233",
        "s3_endpoint": "http://s3.invalid",
        "s3_access_key": "unused",
        "s3_secret_key": "unused",
    }
    with tempfile.TemporaryDirectory(prefix="forge-security-docs-") as jobs_dir:
        factories = {
            "dataset": dataset_app,
            "labeling": labeling_app,
            "training": training_app,
            "registry": registry_app,
            "scheduler": lambda settings: scheduler_app(settings, jobs_dir=Path(jobs_dir)),
            "delivery": delivery_app,
        }
        return {s: factories[s](ServiceSettings(service=s, **placeholder)).openapi() for s in SERVICES}


@pytest.fixture(scope="session")
def forge(
    stack_settings: StackSettings,
    resources: Resources,
    people: People,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Forge]:
    apps = _apps(stack_settings, resources, tmp_path_factory.mktemp("security"))
    with start_blocking_portal() as portal, ExitStack() as running:
        clients = {
            service: running.enter_context(
                portal.wrap_async_context_manager(serving(app, base_url=f"http://{service}"))
            )
            for service, app in apps.items()
        }
        yield Forge(apps, clients, portal, people)
