"""A training job with a scheduler project runs under the scheduler's quota: it asks for an allocation,
waits `queued` while the project's quota is used by another run, runs on its allocation once admitted
(the allocation is `running` while it trains) and gives it back when it ends; a job that can never fit
the quota fails with the scheduler's reason. The scheduler is the real service, on its own database,
serving its real task queue."""

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

from tests.harness import replays, service_settings, serving
from tests.identity import as_user
from tests.services.training.conftest import ACME, EventLog, Inputs, TrainingService, job_body
from tests.waiting import eventually

TWO_CORES = {"cpu_cores": 2, "memory_bytes": 1024**3}
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


async def _project(scheduler: httpx.AsyncClient, cpu_millis: int) -> str:
    created = await scheduler.post("/projects", json={"name": f"p-{uuid.uuid4().hex[:8]}"}, headers=ACME)
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    quota = {"cpu_millis": cpu_millis, "memory_bytes": 8 * 1024**3, "accelerators": {}}
    updated = await scheduler.put(f"/projects/{project_id}/quota", json=quota, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    return project_id


async def _allocation(scheduler: httpx.AsyncClient, allocation_id: str) -> dict[str, Any]:
    response = await scheduler.get(f"/allocations/{allocation_id}", headers=ACME)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_scheduled_job_waits_for_quota_runs_on_its_allocation_and_gives_it_back(
    training: TrainingService,
    scheduler: httpx.AsyncClient,
    inputs: Inputs,
    events: EventLog,
    stack_settings: StackSettings,
) -> None:
    project_id = await _project(scheduler, cpu_millis=2000)  # room for one two-core run at a time
    long_run = {"max_steps": 400, "eval_every_steps": None, "checkpoint_every_steps": None}
    first = await training.create(
        job_body(inputs, scheduler_project_id=project_id, resources=TWO_CORES, hyperparameters=long_run)
    )
    running = await training.wait_for(
        first["id"], lambda job: job["state"] == "running" and job["progress"]["step"] > 0, what="first runs"
    )
    assert running["scheduler_project_id"] == project_id
    first_allocation = await _allocation(scheduler, running["allocation_id"])
    assert first_allocation["state"] == "running"  # held while the runtime trains on the training worker
    assert first_allocation["workload_id"] == first["id"]

    second = await training.create(job_body(inputs, scheduler_project_id=project_id, resources=TWO_CORES))
    waiting = await training.wait_for(
        second["id"], lambda job: job["allocation_id"] is not None, what="second has an allocation"
    )
    assert waiting["state"] == "queued"
    assert (await _allocation(scheduler, waiting["allocation_id"]))["state"] == "queued"

    cancel = await training.http.post(f"/training-jobs/{first['id']}/cancel", json={}, headers=ACME)
    assert cancel.status_code == 202, cancel.text
    await training.wait_state(first["id"], "cancelled")

    async def released(allocation_id: str) -> bool:
        return (await _allocation(scheduler, allocation_id))["state"] == "released"

    await eventually(lambda: released(running["allocation_id"]), timeout_s=30, what="first allocation back")
    done = await training.wait_state(second["id"], "succeeded", timeout_s=180)  # admitted once room was made
    await eventually(lambda: released(done["allocation_id"]), timeout_s=30, what="second allocation back")

    published = await events.of(second["id"], 4)  # created, queued, started, succeeded
    by_type = {event.type.split(".")[-2]: event.data for event in published}
    assert by_type["queued"]["allocation_id"] == done["allocation_id"]  # the scheduler's id, not one of ours
    assert by_type["started"]["allocation_id"] == done["allocation_id"]
    assert by_type["queued"]["queue"] != "local"
    await replays(stack_settings, {"training-job-scheduled-after-waiting": f"training-job:{second['id']}"})


async def test_a_job_larger_than_its_projects_quota_fails_with_the_schedulers_reason(
    training: TrainingService, scheduler: httpx.AsyncClient, inputs: Inputs, stack_settings: StackSettings
) -> None:
    project_id = await _project(scheduler, cpu_millis=1000)
    job = await training.create(job_body(inputs, scheduler_project_id=project_id, resources=TWO_CORES))
    failed = await training.wait_state(job["id"], "failed")
    assert "the scheduler rejected the run" in failed["error"]
    assert "cpu" in failed["error"].lower()
    assert failed["progress"]["step"] == 0  # nothing ran
    await replays(stack_settings, {"training-job-rejected-by-scheduler": f"training-job:{job['id']}"})
