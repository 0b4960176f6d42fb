"""The scheduler's Temporal activities: idempotent requests, runs that heartbeat their logs and are
killed when the activity is cancelled, and the whole chain through a real worker."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from forge_contracts.activities.scheduler import (
    AllocationRequest,
    CommandSpec,
    ReleaseRequest,
    RunProgress,
    RunResult,
    RunSpec,
    WorkerResources,
)
from forge_kit.stack_env import StackSettings
from forge_scheduler.activities import SchedulerActivities
from temporalio.testing import ActivityEnvironment

from tests.services.scheduler.conftest import ACME, GIB, EventLog, SchedulerService, running_scheduler
from tests.services.scheduler.workflows import RunOnAllocation
from tests.waiting import eventually

TICKER = "import time\nfor i in range(10_000):\n    print('step', i, flush=True)\n    time.sleep(0.05)"


def _request(project_id: str, key: str, **extra: object) -> AllocationRequest:
    return AllocationRequest(
        request_key=key,
        tenant_id="acme",
        project_id=project_id,
        per_worker=WorkerResources(cpu_millis=1000, memory_bytes=GIB),
        actor="service:training",
        **extra,  # type: ignore[arg-type]
    )


async def test_requesting_twice_with_one_key_grants_one_allocation(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    activities = SchedulerActivities(scheduler.runtime.scheduler)
    env = ActivityEnvironment()

    first = await env.run(activities.request_allocation, _request(project, "wf-1:request"))
    retried = await env.run(activities.request_allocation, _request(project, "wf-1:request"))
    other = await env.run(activities.request_allocation, _request(project, "wf-2:request"))

    assert first == retried
    assert (first.state, first.admitted) == ("admitted", True)
    assert (other.state, other.admitted) == ("queued", False)
    listed = (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json()
    assert len(listed) == 2


async def test_a_run_heartbeats_its_last_log_lines_and_is_killed_when_the_activity_is_cancelled(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    activities = SchedulerActivities(scheduler.runtime.scheduler)
    grant = await ActivityEnvironment().run(activities.request_allocation, _request(project, "wf-3:request"))
    beats: list[RunProgress] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details[0])
    spec = RunSpec(
        tenant_id="acme",
        allocation_id=grant.allocation_id,
        command=CommandSpec(argv=[sys.executable, "-c", TICKER]),
        heartbeat_interval_s=0.1,
        log_tail_lines=2,
    )

    running = asyncio.create_task(env.run(activities.run_on_allocation, spec))
    await eventually(lambda: _stepped(beats), what="a heartbeat with log lines")
    env.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert beats[-1].allocation_id == grant.allocation_id
    assert len(beats[-1].last_lines) == 2
    found = (await scheduler.http.get(f"/allocations/{grant.allocation_id}", headers=ACME)).json()
    assert (found["state"], found["reason"]) == ("cancelled", "the activity was cancelled")
    assert found["exit_code"] == -15


async def _stepped(beats: list[RunProgress]) -> bool:
    return any(line.startswith("step") for beat in beats for line in beat.last_lines)


async def test_releasing_an_allocation_that_never_ran_cancels_it_and_again_is_a_no_op(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    activities = SchedulerActivities(scheduler.runtime.scheduler)
    env = ActivityEnvironment()
    grant = await env.run(activities.request_allocation, _request(project, "wf-4:request"))
    give_back = ReleaseRequest(tenant_id="acme", allocation_id=grant.allocation_id, reason="not needed")

    first = await env.run(activities.release_allocation, give_back)
    second = await env.run(activities.release_allocation, give_back)

    assert first.state == second.state == "cancelled"


@pytest.fixture
async def scheduler_with_workflow(
    stack_settings: StackSettings, database: str, tmp_path: Path, events: EventLog
) -> AsyncIterator[SchedulerService]:
    async with running_scheduler(stack_settings, database, tmp_path / "jobs", [RunOnAllocation]) as running:
        yield running


async def test_a_workflow_requests_runs_and_releases_through_a_real_worker(
    scheduler_with_workflow: SchedulerService, events: EventLog
) -> None:
    service = scheduler_with_workflow
    project = await service.project(cpu_millis=2000, memory_bytes=2 * GIB)
    request = _request(project, f"wf-{uuid.uuid4().hex}", gang_size=2)
    command = CommandSpec(argv=[sys.executable, "-c", "import os; print('rank', os.environ['RANK'])"])
    client = service.runtime.temporal
    assert client is not None

    result, released_state = await client.execute_workflow(
        RunOnAllocation.run,
        args=[request, command],
        id=f"test-run-{uuid.uuid4().hex}",
        task_queue=service.runtime.task_queue,
        result_type=tuple[RunResult, str],
    )

    assert (result.state, result.exit_code, result.succeeded) == ("released", 0, True)
    assert released_state == "released"
    assert [Path(f).name for f in result.log_files] == ["worker-0.log", "worker-1.log"]
    logs = (await service.http.get(f"/allocations/{result.allocation_id}/logs", headers=ACME)).json()
    assert [w["lines"] for w in logs["workers"]] == [["rank 0"], ["rank 1"]]
    published = await events.of(result.allocation_id, 5)
    assert published[0].data["actor"] == "service:training"
    assert published[-1].type == "forge.scheduler.allocation.released.v1"
