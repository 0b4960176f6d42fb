"""The scheduler service as other services' tests need it: the real service on a fresh database, its
worker on the real `forge-scheduler` queue, and projects with a quota."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from forge_kit.stack_env import StackSettings
from forge_scheduler.app import create_app as scheduler_app

from tests.harness import service_settings, serving
from tests.identity import as_user

OWNER = as_user("alice", "acme")
ADMIN = as_user("ada", "acme")  # a platform admin: quotas are theirs to set


@pytest.fixture
async def scheduler(stack_settings: StackSettings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The scheduler service on a fresh database, its worker on the real `forge-scheduler` queue."""
    name = f"test_scheduler_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack_settings.pg_admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    settings = service_settings(stack_settings, stack_settings.pg_admin_dsn(name), "scheduler")
    app = scheduler_app(settings.model_copy(update={"task_queue": None}), jobs_dir=tmp_path / "jobs")
    try:
        async with serving(app, base_url="http://scheduler") as http:
            yield http
    finally:
        admin = await asyncpg.connect(stack_settings.pg_admin_dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def project_with_quota(
    scheduler: httpx.AsyncClient, cpu_millis: int, memory_bytes: int = 8 * 1024**3
) -> str:
    """A new project of tenant acme with this quota; its id."""
    created = await scheduler.post("/projects", json={"name": f"p-{uuid.uuid4().hex[:8]}"}, headers=OWNER)
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    quota = {"cpu_millis": cpu_millis, "memory_bytes": memory_bytes, "accelerators": {}}
    updated = await scheduler.put(f"/projects/{project_id}/quota", json=quota, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    return project_id


async def allocation(scheduler: httpx.AsyncClient, allocation_id: str) -> dict[str, Any]:
    response = await scheduler.get(f"/allocations/{allocation_id}", headers=OWNER)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def allocations_of(scheduler: httpx.AsyncClient, workload_id: str) -> list[dict[str, Any]]:
    """The acme allocations made for a workload (a job, a task)."""
    response = await scheduler.get("/allocations", headers=OWNER)
    assert response.status_code == 200, response.text
    return [a for a in response.json() if a.get("workload_id") == workload_id]
