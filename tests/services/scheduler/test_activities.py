"""The scheduler's Temporal activities: idempotent requests, runs that heartbeat their logs and are
killed when the activity is cancelled, and the whole chain through a real worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from forge_contracts.activities.scheduler import (
    AllocationRequest,
    GangProbe,
    GangProbeParams,
    ReleaseRequest,
    RunProgress,
    RunResult,
    RunSpec,
    WorkerResources,
)
from forge_kit.stack_env import StackSettings
from forge_scheduler.activities import SchedulerActivities
from forge_scheduler.backends import LocalBackend
from forge_scheduler.service import Scheduler
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.services.scheduler.conftest import ACME, GIB, EventLog, SchedulerService, running_scheduler
from tests.services.scheduler.workflows import RunOnAllocation
from tests.waiting import eventually

HOLDING = GangProbe(kind="gang-probe", params=GangProbeParams(message="step", hold_s=600))


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
        workload=HOLDING,
        heartbeat_interval_s=0.1,
        log_tail_lines=2,
    )

    running = asyncio.create_task(env.run(activities.run_on_allocation, spec))
    await eventually(lambda: _stepped(beats), what="a heartbeat with log lines")
    env.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert beats[-1].allocation_id == grant.allocation_id
    assert beats[-1].last_lines == ["step from 0 of 1", f"holding for 600s (pid {_pid(beats[-1])})"]
    found = (await scheduler.http.get(f"/allocations/{grant.allocation_id}", headers=ACME)).json()
    assert (found["state"], found["reason"]) == ("cancelled", "the activity was cancelled")
    assert found["exit_code"] == -15


async def _stepped(beats: list[RunProgress]) -> bool:
    return any(line.startswith("holding") for beat in beats for line in beat.last_lines)


def _pid(beat: RunProgress) -> str:
    return beat.last_lines[-1].rsplit(" ", 1)[1].rstrip(")")


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
    workload = GangProbe(kind="gang-probe", params=GangProbeParams(message="rank"))
    client = service.runtime.temporal
    assert client is not None

    result, released_state = await client.execute_workflow(
        RunOnAllocation.run,
        args=[request, workload],
        id=f"test-run-{uuid.uuid4().hex}",
        task_queue=service.runtime.task_queue,
        result_type=tuple[RunResult, str],
    )

    assert (result.state, result.exit_code, result.succeeded) == ("released", 0, True)
    assert released_state == "released"
    assert [Path(f).name for f in result.log_files] == ["worker-0.log", "worker-1.log"]
    logs = (await service.http.get(f"/allocations/{result.allocation_id}/logs", headers=ACME)).json()
    assert [w["lines"] for w in logs["workers"]] == [["rank from 0 of 2"], ["rank from 1 of 2"]]
    published = await events.of(result.allocation_id, 5)
    assert published[0].data["actor"] == "service:training"
    assert published[-1].type == "forge.scheduler.allocation.released.v1"


async def test_a_request_key_used_for_another_request_is_refused_and_not_retried(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=2000, memory_bytes=2 * GIB)
    activities = SchedulerActivities(scheduler.runtime.scheduler)
    env = ActivityEnvironment()
    first = await env.run(activities.request_allocation, _request(project, "wf-5:request"))

    with pytest.raises(ApplicationError) as refused:
        await env.run(activities.request_allocation, _request(project, "wf-5:request", gang_size=2))

    assert refused.value.non_retryable
    assert refused.value.type == "Unprocessable"
    assert "wf-5:request" in str(refused.value) and first.allocation_id in str(refused.value)
    listed = (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json()
    assert [a["id"] for a in listed] == [first.allocation_id]


def test_the_activities_contract_takes_no_argv() -> None:
    base = {
        "request_key": "k",
        "tenant_id": "acme",
        "project_id": str(uuid.uuid4()),
        "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB},
    }
    argv = {"argv": ["/bin/sh", "-c", "id"]}
    assert AllocationRequest.model_validate({**base, "command": None}).workload is None  # old callers' null

    for bad in (
        {**base, "command": argv},
        {**base, "workload": {"kind": "gang-probe", **argv}},
        {**base, "workload": {"kind": "gang-probe", "params": argv}},
        {**base, "workload": {"kind": "shell", "params": argv}},
    ):
        with pytest.raises(ValidationError):
            AllocationRequest.model_validate(bad)
    with pytest.raises(ValidationError):
        RunSpec.model_validate({"tenant_id": "acme", "allocation_id": str(uuid.uuid4()), "command": argv})


async def test_a_request_the_http_api_would_refuse_fails_the_activity_without_retries(tmp_path: Path) -> None:
    # Validation comes first: no database is reached.
    unused = Scheduler(db=None, backend=LocalBackend(), jobs_dir=tmp_path)  # type: ignore[arg-type]
    activities = SchedulerActivities(unused)
    huge = _request(str(uuid.uuid4()), "wf-6:request").model_copy(
        update={"per_worker": WorkerResources(cpu_millis=1000, memory_bytes=2**60)}
    )

    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.request_allocation, huge)

    assert refused.value.non_retryable
    assert refused.value.type == "ValidationError"
    assert "memory_bytes" in str(refused.value)
