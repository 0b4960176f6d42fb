"""Session fixtures: the real local stack, started once (or reused), and isolated resources per test.

Each test gets its own database, Kafka topic, S3 bucket and Temporal task queue, so tests never see
each other's data, and the stack is started only once for the whole run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from forge_cli.services import Platform
from forge_cli.stack import Stack
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings, load_stack_settings

# Only the session's directory keeps the audit trail (under a consumer group of its own); schedulers a
# test starts would otherwise each read the whole audit topic into their own databases.
os.environ["FORGE_AUDIT_CONSUMER"] = "false"
os.environ["FORGE_LINEAGE_CONSUMER"] = "false"  # the lineage tests turn it on for their registry


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The local stack: reused when already healthy, else started here and stopped at the end.

    Services the platform runs (`forge up`, `make demo`) are stopped for the run and started again after
    it: their workers poll the same Temporal task queues as the tests' own workers and would take the
    tests' activities to their own databases."""
    stack = Stack()
    already_up = all(status.state == "running" for status in stack.status())
    stack.up()
    paused = [service.name for service in Platform(stack).services if service.running()]
    for service in Platform(stack, only=paused).services:
        service.stop()
    yield stack
    if not already_up and not os.environ.get("FORGE_KEEP_STACK"):
        stack.down()
    elif paused:
        Platform(stack, only=paused).up()


@pytest.fixture(scope="session")
def stack_settings(stack: Stack) -> StackSettings:
    return load_stack_settings(stack.env_file)


@pytest.fixture
async def database(stack_settings: StackSettings) -> AsyncIterator[str]:
    """A fresh, empty database for one test; yields its DSN and drops it afterwards."""
    name = _unique("test_")
    await _admin(stack_settings, f'CREATE DATABASE "{name}"')
    yield stack_settings.pg_admin_dsn(name)
    # A new connection: the test may have restarted PostgreSQL.
    await _admin(stack_settings, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(settings: StackSettings, statement: str) -> None:
    admin = await asyncpg.connect(settings.pg_admin_dsn())
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
async def kafka_topic(stack_settings: StackSettings) -> AsyncIterator[str]:
    """A fresh topic with 3 partitions for one test; deleted afterwards."""
    name = _unique("test.")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.fixture
async def s3_bucket(stack_settings: StackSettings) -> AsyncIterator[str]:
    """A fresh bucket for one test; emptied and removed afterwards."""
    name = _unique("test-")
    async with s3_client(stack_settings) as s3:
        await s3.create_bucket(Bucket=name)
        yield name
        listing = await s3.list_objects_v2(Bucket=name)
        for item in listing.get("Contents", []):
            await s3.delete_object(Bucket=name, Key=item["Key"])
        await s3.delete_bucket(Bucket=name)


@pytest.fixture
def task_queue() -> str:
    """A Temporal task queue no other test uses."""
    return _unique("test-queue-")


LEGACY_MEMBERS = {"acme": ["alice", "bob", "carol", "dave"], "globex": ["bob", "eve"]}
"""The tenants and users the service tests act as, each with every role a tenant grants to one person."""
LEGACY_ROLES = ["tenant-admin", "release-approver", "annotator", "reviewer"]


@pytest.fixture(scope="session")
async def directory(
    stack: Stack,
    stack_settings: StackSettings,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[str]:
    """The directory every service under test resolves its callers from: a real scheduler process on a
    database of its own, as in `forge up` (services find it through FORGE_DIRECTORY_URL). Tenants `acme`
    and `globex` exist in it, with the users the service tests act as."""
    from tests.harness import DirectoryProcess, free_port
    from tests.identity import grant
    from tests.waiting import eventually

    name = _unique("test_directory_")
    await _admin(stack_settings, f'CREATE DATABASE "{name}"')
    process = DirectoryProcess(
        stack, stack_settings.pg_admin_dsn(name), free_port(), tmp_path_factory.mktemp("directory")
    )
    process.prepare()
    process.launch()
    try:

        async def ready() -> bool:
            assert process.running(), f"the directory exited; see {process.log_path}"
            return process.healthy()

        await eventually(ready, timeout_s=90, what="the test directory ready")
        url = process.endpoints()["http"]
        os.environ["FORGE_DIRECTORY_URL"] = url
        for tenant, users in LEGACY_MEMBERS.items():
            for user in users:
                grant(url, tenant, user, LEGACY_ROLES)
        yield url
    finally:
        os.environ.pop("FORGE_DIRECTORY_URL", None)
        process.stop()
        shutil.rmtree(process.dir, ignore_errors=True)  # its working folder
        if not request.session.testsfailed:
            process.log_path.unlink(missing_ok=True)  # a failed session keeps the log to read
        await _admin(stack_settings, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
