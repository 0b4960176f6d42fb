"""Running an allocation's gang as local processes: the scheduler renders registered workload kinds
(never a caller's argv), exit and logs are reported, the exit releases the allocation (and admits what
waited), cancellation kills the processes."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.services.scheduler.conftest import (
    ACME,
    ACME_SERVICE,
    GIB,
    GLOBEX,
    EventLog,
    SchedulerService,
)
from tests.waiting import eventually


def probe(**params: Any) -> dict[str, Any]:
    """A `gang-probe` workload with `params`."""
    return {"kind": "gang-probe", "params": params}


async def test_a_local_run_reports_its_exit_and_logs_and_releases_the_allocation(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=2000, memory_bytes=2 * GIB)
    granted = await scheduler.allocate(project, gang_size=2)

    started = await scheduler.http.post(
        f"/allocations/{granted['id']}/run", json=probe(message="hi"), headers=ACME_SERVICE
    )

    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running"
    assert started.json()["workload"] == {
        "kind": "gang-probe",
        "params": {"message": "hi", "exit_code": 0, "hold_s": 0.0, "busy": False},
        "max_address_space_bytes": None,
        "max_cpu_time_s": None,
    }
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

    started = await scheduler.http.post(
        f"/allocations/{granted['id']}/run", json=probe(message="boom", exit_code=3), headers=ACME_SERVICE
    )

    assert started.status_code == 200, started.text
    ended = await scheduler.ended(granted["id"])
    assert (ended["state"], ended["exit_code"]) == ("released", 3)
    logs = (await scheduler.http.get(f"/allocations/{granted['id']}/logs", headers=ACME)).json()
    assert logs["workers"][0]["lines"] == ["boom from 0 of 1"]


async def test_a_queued_allocation_with_a_workload_runs_once_the_one_before_it_exits(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    first = await scheduler.allocate(project, workload=probe(hold_s=600))
    second = await scheduler.allocate(project, workload=probe(message="done"))
    assert (first["state"], second["state"]) == ("running", "queued")

    (scheduler.jobs_dir / first["id"] / "proceed").touch()  # the probe's gate: let the first one finish
    assert (await scheduler.ended(first["id"]))["exit_code"] == 0
    ended = await scheduler.ended(second["id"])

    assert (ended["state"], ended["exit_code"]) == ("released", 0)
    logs = (await scheduler.http.get(f"/allocations/{second['id']}/logs", headers=ACME)).json()
    assert logs["workers"][0]["lines"] == ["done from 0 of 1"]


async def test_cancelling_a_running_allocation_kills_its_processes(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project, workload=probe(hold_s=600))
    assert granted["state"] == "running", granted

    async def pid() -> int | None:
        logs = (await scheduler.http.get(f"/allocations/{granted['id']}/logs", headers=ACME)).json()
        lines = logs["workers"][0]["lines"] if logs["workers"] else []
        holding = [line for line in lines if line.startswith("holding")]
        return int(holding[0].rsplit(" ", 1)[1].rstrip(")")) if holding else None

    worker = await eventually(pid, what="the worker to print its pid")
    cancelled = await scheduler.http.post(
        f"/allocations/{granted['id']}/cancel", json={"reason": "no longer needed"}, headers=ACME_SERVICE
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
    runaway = {**probe(hold_s=600, busy=True), "max_cpu_time_s": 1}

    granted = await scheduler.allocate(project, workload=runaway)

    ended = await scheduler.ended(granted["id"])
    assert (ended["state"], ended["exit_code"]) == ("released", -signal.SIGXCPU)


async def test_a_workload_that_cannot_start_is_a_400_and_the_allocation_stays_admitted(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)
    scheduler.runtime.scheduler.python = "/no/such/python"  # the workers' interpreter is missing

    response = await scheduler.http.post(
        f"/allocations/{granted['id']}/run", json=probe(), headers=ACME_SERVICE
    )

    assert response.status_code == 400
    assert "/no/such/python" in response.json()["detail"]
    assert await scheduler.state(granted["id"]) == "admitted"


async def test_the_training_runtime_runs_on_the_spec_given_as_data(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    incomplete = {"command": "train", "spec": {"out_dir": "out", "epochs": 1}}

    granted = await scheduler.allocate(project, workload={"kind": "training-runtime", "params": incomplete})

    ended = await scheduler.ended(granted["id"])
    # The runtime read the spec the scheduler wrote (and refused it: no base model, no training data).
    assert (ended["state"], ended["exit_code"]) == ("released", 2)
    logs = (await scheduler.http.get(f"/allocations/{granted['id']}/logs", headers=ACME)).json()
    error = logs["workers"][0]["lines"][-1]
    assert '"error_type": "SpecError"' in error and "invalid TrainSpec" in error
    assert "base_model_dir: Field required" in error
    assert "out_dir" not in error  # what was given arrived
    written = (scheduler.jobs_dir / granted["id"] / "train.spec.json").read_text()
    assert json.loads(written) == incomplete["spec"]


async def test_no_route_runs_a_program_the_caller_names(scheduler: SchedulerService, tmp_path: Path) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    marker = tmp_path / "ran"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    body = {"project_id": project, "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB}}

    with_command = await scheduler.http.post(
        "/allocations", json={**body, "command": {"argv": argv}}, headers=ACME_SERVICE
    )
    as_params = await scheduler.http.post(
        "/allocations", json={**body, "workload": probe(argv=argv)}, headers=ACME_SERVICE
    )
    granted = await scheduler.allocate(project)
    run_argv = await scheduler.http.post(
        f"/allocations/{granted['id']}/run", json={"argv": argv}, headers=ACME_SERVICE
    )
    run_env = await scheduler.http.post(
        f"/allocations/{granted['id']}/run",
        json={**probe(), "env": {"LD_PRELOAD": "evil.so"}, "working_dir": "/"},
        headers=ACME_SERVICE,
    )

    assert with_command.status_code == 422 and "body.command" in with_command.json()["detail"]
    assert as_params.status_code == 422 and "params.argv" in as_params.json()["detail"]
    assert run_argv.status_code == 422, run_argv.text
    assert run_env.status_code == 422 and "body.gang-probe.env" in run_env.json()["detail"]
    assert await scheduler.state(granted["id"]) == "admitted"
    listed = (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json()
    assert [a["id"] for a in listed] == [granted["id"]]
    assert not marker.exists()


async def test_an_unknown_kind_or_parameters_the_kind_does_not_take_are_a_422(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    body = {"project_id": project, "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB}}
    escaping = {"command": "train", "spec": {"base_model_dir": "../../etc", "out_dir": "out"}}
    cases = {
        "shell": ({"kind": "shell", "params": {"script": "id"}}, "body.workload"),
        "exit code": (probe(exit_code=256), "body.workload.gang-probe.params.exit_code"),
        "text for a number": (probe(hold_s="5"), "body.workload.gang-probe.params.hold_s"),
        "runtime command": (
            {"kind": "training-runtime", "params": {"command": "build-base", "spec": {}}},
            "body.workload.training-runtime.params.command",
        ),
        "path out of the job": (
            {"kind": "training-runtime", "params": escaping},
            "body.workload.training-runtime.params.spec",
        ),
        "absolute path": (
            {"kind": "training-runtime", "params": {"command": "evaluate", "spec": {"model_dir": "/root"}}},
            "body.workload.training-runtime.params.spec",
        ),
    }
    for case, (workload, field) in cases.items():
        response = await scheduler.http.post(
            "/allocations", json={**body, "workload": workload}, headers=ACME_SERVICE
        )
        assert response.status_code == 422, (case, response.text)
        assert field in response.json()["detail"], (case, response.json()["detail"])
    unknown = await scheduler.http.post(
        "/allocations", json={**body, "workload": {"kind": "shell"}}, headers=ACME_SERVICE
    )
    assert "'gang-probe', 'training-runtime'" in unknown.json()["detail"]
    assert (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json() == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
