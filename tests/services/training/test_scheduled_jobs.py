"""A training job with a scheduler project runs under the scheduler's quota: it asks for an allocation,
waits `queued` while the project's quota is used by another run, runs on its allocation once admitted
(the allocation is `running` while it trains) and gives it back when it ends; a job that can never fit
the quota fails with the scheduler's reason. The scheduler is the real service, on its own database,
serving its real task queue."""

from __future__ import annotations

import httpx
from forge_kit.stack_env import StackSettings

from tests.harness import replays
from tests.services.scheduler_service import allocation, project_with_quota
from tests.services.scheduler_service import scheduler as scheduler  # a fixture
from tests.services.training.conftest import ACME, EventLog, Inputs, TrainingService, job_body
from tests.waiting import eventually

TWO_CORES = {"cpu_cores": 2, "memory_bytes": 1024**3}


async def test_a_scheduled_job_waits_for_quota_runs_on_its_allocation_and_gives_it_back(
    training: TrainingService,
    scheduler: httpx.AsyncClient,
    inputs: Inputs,
    events: EventLog,
    stack_settings: StackSettings,
) -> None:
    project_id = await project_with_quota(scheduler, cpu_millis=2000)  # room for one two-core run at a time
    long_run = {"max_steps": 400, "eval_every_steps": None, "checkpoint_every_steps": None}
    first = await training.create(
        job_body(inputs, scheduler_project_id=project_id, resources=TWO_CORES, hyperparameters=long_run)
    )
    running = await training.wait_for(
        first["id"], lambda job: job["state"] == "running" and job["progress"]["step"] > 0, what="first runs"
    )
    assert running["scheduler_project_id"] == project_id
    first_allocation = await allocation(scheduler, running["allocation_id"])
    assert first_allocation["state"] == "running"  # held while the runtime trains on the training worker
    assert first_allocation["workload_id"] == first["id"]

    second = await training.create(job_body(inputs, scheduler_project_id=project_id, resources=TWO_CORES))
    waiting = await training.wait_for(
        second["id"], lambda job: job["allocation_id"] is not None, what="second has an allocation"
    )
    assert waiting["state"] == "queued"
    assert (await allocation(scheduler, waiting["allocation_id"]))["state"] == "queued"

    cancel = await training.http.post(f"/training-jobs/{first['id']}/cancel", json={}, headers=ACME)
    assert cancel.status_code == 202, cancel.text
    await training.wait_state(first["id"], "cancelled")

    async def released(allocation_id: str) -> bool:
        return (await allocation(scheduler, allocation_id))["state"] == "released"

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
    project_id = await project_with_quota(scheduler, cpu_millis=1000)
    job = await training.create(job_body(inputs, scheduler_project_id=project_id, resources=TWO_CORES))
    failed = await training.wait_state(job["id"], "failed")
    assert "the scheduler rejected the run" in failed["error"]
    assert "cpu" in failed["error"].lower()
    assert failed["progress"]["step"] == 0  # nothing ran
    await replays(stack_settings, {"training-job-rejected-by-scheduler": f"training-job:{job['id']}"})
