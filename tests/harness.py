"""Running a Forge service in a test: its settings on the test's own database and Temporal queue, an
HTTP client on its app with the app's lifespan (migrations, consumers, relay, worker) running, service
processes killed and relaunched, and workflow histories replayed (and recorded) as they ran."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from forge_cli.demo import sign_in_demo
from forge_cli.services import Platform, ServiceProcess
from forge_cli.stack import Stack, _alive, port_open
from forge_kit.objects import DEFAULT_MODEL_AREAS
from forge_kit.settings import ServiceSettings
from forge_kit.stack_env import StackSettings, env_file_path, read_env_file
from forge_kit.temporal import connect, replay
from forge_sdk.auth import SignedIn

TEST_MODEL_AREAS = [
    *DEFAULT_MODEL_AREAS,
    # Tests keep model files in buckets of their own (`s3_bucket`: test-..., the security suite's sec-...),
    # laid out as the platform's: a training bucket's `<tenant>/...`, a models bucket's `tenants/<tenant>/`.
    "s3://test-*/{tenant}/",
    "s3://test-*/tenants/{tenant}/",
    "s3://sec-*/{tenant}/",
    "s3://sec-*/tenants/{tenant}/",
]


def service_settings(stack_settings: StackSettings, database: str, service: str) -> ServiceSettings:
    """Settings for `service` on the real stack, with a fresh database and a task queue of its own; it
    accepts the stack's tokens and resolves callers from the test directory (FORGE_DIRECTORY_URL)."""
    written = read_env_file(env_file_path())
    return ServiceSettings(
        oidc_issuer=written["FORGE_OIDC_ISSUER"],
        oidc_audience=written.get("FORGE_OIDC_AUDIENCE", "forge"),
        client_secret=written.get(f"FORGE_{service.upper()}_CLIENT_SECRET", ""),
        directory_url=os.environ.get("FORGE_DIRECTORY_URL"),
        service=service,
        database_url=database,
        kafka_bootstrap=stack_settings.kafka_bootstrap,
        temporal_address=stack_settings.temporal_address,
        temporal_namespace=stack_settings.temporal_namespace,
        s3_endpoint=stack_settings.s3_endpoint,
        s3_access_key=stack_settings.s3_access_key,
        s3_secret_key=stack_settings.s3_secret_key.get_secret_value(),
        s3_region=stack_settings.s3_region,
        task_queue=f"forge-{service}-{uuid.uuid4().hex[:8]}",
        shutdown_grace_s=5.0,
        model_areas=TEST_MODEL_AREAS,
    )


@asynccontextmanager
async def serving(app: FastAPI, base_url: str = "http://forge") -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and yield an HTTP client talking to it in-process."""
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


class DirectoryProcess(ServiceProcess):
    """A scheduler process serving as the tests' directory, on its own database, port and task queue."""

    def __init__(self, stack: Stack, database: str, port: int, jobs_dir: Path) -> None:
        # A name of its own: test sessions may run side by side on one stack.
        super().__init__(stack, "scheduler", instance=f"test-directory-{uuid.uuid4().hex[:8]}")
        self.port = port
        self.database = database
        self.jobs_dir = jobs_dir

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("FORGE_DIRECTORY_URL", None)
        env.update(
            {
                "FORGE_DATABASE_URL": self.database,
                "FORGE_TASK_QUEUE": f"forge-scheduler-directory-{uuid.uuid4().hex[:8]}",
                "FORGE_SCHEDULER_JOBS_DIR": str(self.jobs_dir),
                # The session's audit trail: entries of this session's tests, from the moment it starts.
                "FORGE_AUDIT_CONSUMER": "true",
                "FORGE_AUDIT_GROUP": f"test-audit-{uuid.uuid4().hex[:8]}",
                "FORGE_AUDIT_START": "latest",
                "FORGE_AUDIT_RETENTION_DAYS": "30",
            }
        )
        return env


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def ready(process: ServiceProcess) -> bool:
    """Probe for `eventually`: the service process answers /readyz (fails at once if it exited)."""
    assert process.running(), f"{process.name} exited; see {process.log_path}"
    return await asyncio.to_thread(process.healthy)


async def kill_and_relaunch(process: ServiceProcess) -> None:
    """SIGKILL the service's process group (the worker and what it started in its group), wait until it
    is gone and its port is free, then start it again."""
    from tests.waiting import eventually

    pid = process.pid()
    assert pid is not None, f"{process.name} has no pid"
    os.killpg(pid, signal.SIGKILL)

    async def gone() -> bool:
        return not _alive(pid, process.process_marker)

    async def port_free() -> bool:
        # The kernel empties /proc/<pid>/cmdline before it closes the dying process's files: a process
        # that looks gone may still hold its listener for a moment.
        if not port_open(process.port):
            return True
        listing = await asyncio.to_thread(
            subprocess.run, ["ss", "-ltnp"], capture_output=True, text=True, check=False
        )
        held = " | ".join(line for line in listing.stdout.splitlines() if f":{process.port}" in line)
        raise AssertionError(f"port {process.port} still held: {held}")

    await eventually(gone, timeout_s=10, what=f"{process.name} gone")
    await eventually(port_free, timeout_s=30, what=f"{process.name}'s port free")
    process.launch()


HISTORIES = Path(__file__).parent / "workflow_histories"
"""Recorded workflow histories: tests/test_workflow_replay.py replays each on the current code."""


def workflow_types() -> list[type]:
    """Every workflow Forge runs (the replayer needs the classes)."""
    from forge_dataset.tasks.workflow import DatasetTaskWorkflow
    from forge_training.chain import ModelChainWorkflow
    from forge_training.workflows import EvaluationJobWorkflow, TrainingJobWorkflow

    return [ModelChainWorkflow, TrainingJobWorkflow, EvaluationJobWorkflow, DatasetTaskWorkflow]


async def replays(stack_settings: StackSettings, workflows: dict[str, str]) -> None:
    """Replay each workflow's history (`name` -> workflow id) on the current code; with
    FORGE_RECORD_HISTORIES=1 keep it as `HISTORIES/<name>.json` so later changes are replayed against it."""
    client = await connect(stack_settings.temporal_address, stack_settings.temporal_namespace)
    for name, workflow_id in workflows.items():
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        await replay(history, workflow_types())
        if os.environ.get("FORGE_RECORD_HISTORIES"):
            HISTORIES.mkdir(exist_ok=True)
            (HISTORIES / f"{name}.json").write_text(history.to_json())


PLATFORM_ONLY = ("FORGE_DIRECTORY_URL", "FORGE_AUDIT_CONSUMER", "FORGE_LINEAGE_CONSUMER")
"""Settings the test session changes for its own service processes, not for the platform's."""
VIEWER = "vic"
"""A seeded LDAP user, made a viewer of the demo tenant by `demo_tenant`."""


@contextmanager
def forge_up_platform(stack: Stack) -> Iterator[Platform]:
    """The six services as `forge up` runs them (own databases; the platform's scheduler is their directory,
    not the tests'; audit and lineage consumers on), stopped again afterwards unless they ran before: the
    platform users reach through the gateway, for the browser and CLI tests."""
    platform = Platform(stack)
    already_running = {service.name for service in platform.services if service.running()}
    saved = {name: os.environ.pop(name, None) for name in PLATFORM_ONLY}
    try:
        platform.up()
    finally:
        os.environ.update({name: value for name, value in saved.items() if value is not None})
    try:
        yield platform
    finally:
        for service in platform.services:
            if service.name not in already_running:
                service.stop()


async def demo_tenant(env: dict[str, str], scheduler: httpx.AsyncClient) -> tuple[SignedIn, SignedIn]:
    """The demo user signed in (tenant admin, ML engineer, release approver of the demo tenant) and the
    platform admin acting in that tenant, as `forge demo` makes them; `VIEWER` is made a viewer there."""
    approver, admin = await sign_in_demo(env, scheduler)
    granted = await scheduler.put(
        f"/tenants/{approver.tenant}/members/{VIEWER}", json={"roles": ["viewer"]}, headers=admin
    )
    assert granted.status_code == 200, granted.text
    return approver, admin
