"""Running an allocation's gang as local processes: exit and logs are reported, the exit releases the
allocation (and admits what waited), cancellation kills the processes."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from tests.services.scheduler.conftest import ACME, GIB, GLOBEX, EventLog, SchedulerService
from tests.waiting import eventually

PRINT_RANK = (
    "import os; print(os.environ['GREETING'], 'from', os.environ['FORGE_WORKER_RANK'], "
    "'of', os.environ['FORGE_WORLD_SIZE'])"
)
WAIT_FOR_FILE = (
    "import pathlib, sys, time\n"
    "gate = pathlib.Path(sys.argv[1])\n"
    "while not gate.exists():\n"
    "    time.sleep(0.01)"
)
SLEEPER = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"


async def test_a_local_run_reports_its_exit_and_logs_and_releases_the_allocation(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=2000, memory_bytes=2 * GIB)
    granted = await scheduler.allocate(project, gang_size=2)
    command = {"argv": [sys.executable, "-c", PRINT_RANK], "env": {"GREETING": "hi"}}

    started = await scheduler.http.post(f"/allocations/{granted['id']}/run", json=command, headers=ACME)

    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running"
    ended = await scheduler.ended(granted["id"])
    assert (ended["state"], ended["exit_code"]) == ("released", 0)
    logs = (await scheduler.http.get(f"/allocations/{granted['id']}/logs?tail=5", headers=ACME)).json()
    assert [(w["rank"], w["lines"]) for w in logs["workers"]] == [
        (0, ["hi from 0 of 2"]),
        (1, ["hi from 1 of 2"]),
    ]
    assert (await scheduler.http.get(f"/allocations/{granted['id']}/logs", headers=GLOBEX)).status_code == 404
    published = await events.of(granted["id"], 5)
    assert [e.type.split(".")[3] for e in published] == [
        "requested",
        "queued",
        "admitted",
        "started",
        "released",
    ]
    assert [e.sequence for e in published] == [1, 2, 3, 4, 5]
    assert published[3].data["backend"] == "local"
    assert published[4].data["cpu_core_seconds"] >= 0
    usage = (await scheduler.http.get(f"/projects/{project}/usage", headers=ACME)).json()
    assert usage["resources"][0]["used"] == 0


async def test_a_failing_worker_is_recorded_and_still_releases(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)
    command = {"argv": [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]}

    started = await scheduler.http.post(f"/allocations/{granted['id']}/run", json=command, headers=ACME)

    assert started.status_code == 200, started.text
    ended = await scheduler.ended(granted["id"])
    assert (ended["state"], ended["exit_code"]) == ("released", 3)
    logs = (await scheduler.http.get(f"/allocations/{granted['id']}/logs", headers=ACME)).json()
    assert logs["workers"][0]["lines"] == ["boom"]


async def test_a_queued_allocation_with_a_command_runs_once_the_one_before_it_exits(
    scheduler: SchedulerService, tmp_path: Path
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    gate = tmp_path / "gate"
    first = await scheduler.allocate(
        project, command={"argv": [sys.executable, "-c", WAIT_FOR_FILE, str(gate)]}
    )
    second = await scheduler.allocate(project, command={"argv": [sys.executable, "-c", "print('done')"]})
    assert (first["state"], second["state"]) == ("running", "queued")

    gate.touch()  # let the first one finish
    assert (await scheduler.ended(first["id"]))["exit_code"] == 0
    ended = await scheduler.ended(second["id"])

    assert (ended["state"], ended["exit_code"]) == ("released", 0)


async def test_cancelling_a_running_allocation_kills_its_processes(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project, command={"argv": [sys.executable, "-c", SLEEPER]})
    assert granted["state"] == "running", granted

    async def pid() -> int | None:
        logs = (await scheduler.http.get(f"/allocations/{granted['id']}/logs", headers=ACME)).json()
        lines = logs["workers"][0]["lines"] if logs["workers"] else []
        return int(lines[0]) if lines else None

    worker = await eventually(pid, what="the worker to print its pid")
    cancelled = await scheduler.http.post(
        f"/allocations/{granted['id']}/cancel", json={"reason": "no longer needed"}, headers=ACME
    )

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["exit_code"] == -15, cancelled.text  # SIGTERM
    assert not _alive(worker)
    published = await events.of(granted["id"], 5)
    assert published[-1].type == "forge.scheduler.allocation.cancelled.v1"
    assert published[-1].data == {**published[-1].data, "from_state": "running", "reason": "no longer needed"}


async def test_a_cpu_time_limit_stops_a_runaway_worker(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    runaway = {"argv": [sys.executable, "-c", "while True: pass"], "max_cpu_time_s": 1}

    granted = await scheduler.allocate(project, command=runaway)

    ended = await scheduler.ended(granted["id"])
    assert (ended["state"], ended["exit_code"]) == ("released", -signal.SIGXCPU)


async def test_a_command_that_cannot_start_is_a_400_and_the_allocation_stays_admitted(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)

    response = await scheduler.http.post(
        f"/allocations/{granted['id']}/run", json={"argv": ["/no/such/program"]}, headers=ACME
    )

    assert response.status_code == 400
    assert "/no/such/program" in response.json()["detail"]
    assert await scheduler.state(granted["id"]) == "admitted"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
