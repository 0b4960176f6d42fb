"""Projects, quotas and admission over HTTP, and the events each allocation transition publishes."""

from __future__ import annotations

from tests.services.scheduler.conftest import ACME, GIB, GLOBEX, EventLog, SchedulerService

GPU = "nvidia.com/gpu"


async def test_a_request_within_quota_is_admitted_and_counts_as_usage(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=4000, memory_bytes=8 * GIB, accelerators={GPU: 2})

    granted = await scheduler.allocate(
        project, cpu_millis=1500, memory_bytes=2 * GIB, gang_size=2, accelerators={GPU: 1}
    )

    assert granted["state"] == "admitted"
    usage = (await scheduler.http.get(f"/projects/{project}/usage", headers=ACME)).json()
    by_name = {r["resource"]: r for r in usage["resources"]}
    assert by_name["cpu_millis"] == {"resource": "cpu_millis", "used": 3000, "quota": 4000, "available": 1000}
    assert by_name[GPU]["used"] == 2 and by_name[GPU]["available"] == 0
    assert usage["allocations"] == {"admitted": 1}
    published = await events.of(granted["id"], 3)
    assert [e.type for e in published] == [
        "forge.scheduler.allocation.requested.v1",
        "forge.scheduler.allocation.queued.v1",
        "forge.scheduler.allocation.admitted.v1",
    ]
    assert [e.sequence for e in published] == [1, 2, 3]
    assert {e.tenantid for e in published} == {"acme"}
    assert published[0].data["resources"] == {
        "cpu_cores": 1.5,
        "memory_bytes": 2 * GIB,
        "accelerator": GPU,
        "accelerator_count": 1,
        "replicas": 2,
    }
    assert published[0].data["actor"] == "alice"


async def test_over_quota_requests_queue_and_are_admitted_after_release_in_priority_order(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=2000, memory_bytes=8 * GIB)
    holder = await scheduler.allocate(project, cpu_millis=2000)
    low = await scheduler.allocate(project, cpu_millis=1000, priority=1)
    high = await scheduler.allocate(project, cpu_millis=2000, priority=9)
    assert (holder["state"], low["state"], high["state"]) == ("admitted", "queued", "queued")

    cancelled = await scheduler.http.post(
        f"/allocations/{holder['id']}/cancel", json={"reason": "done early"}, headers=ACME
    )

    assert cancelled.json()["state"] == "cancelled"
    # the higher priority one arrived later but goes first; it takes the whole quota
    assert await scheduler.state(high["id"]) == "admitted"
    assert await scheduler.state(low["id"]) == "queued"
    await scheduler.http.post(f"/allocations/{high['id']}/cancel", headers=ACME)
    assert await scheduler.state(low["id"]) == "admitted"
    low_events = await events.of(low["id"], 3)
    assert [e.type.split(".")[3] for e in low_events] == ["requested", "queued", "admitted"]
    assert low_events[1].data["position"] == 0
    assert (await events.of(high["id"], 3))[1].data["position"] == 0  # ahead of `low` when it queued


async def test_a_request_that_could_never_fit_the_quota_is_rejected_with_the_reason(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=8000, memory_bytes=64 * GIB, accelerators={GPU: 8})

    rejected = await scheduler.allocate(project, gang_size=4, accelerators={GPU: 4})

    assert rejected["state"] == "rejected"
    assert rejected["rejection_code"] == "quota_exceeded"
    assert rejected["reason"] == "gang of 4 exceeds the project quota (nvidia.com/gpu: needs 16, has 8)"
    published = await events.of(rejected["id"], 2)
    assert [e.type for e in published] == [
        "forge.scheduler.allocation.requested.v1",
        "forge.scheduler.allocation.rejected.v1",
    ]
    assert published[1].data["reason"] == rejected["reason"]


async def test_raising_the_quota_admits_queued_work_and_lowering_it_rejects_what_can_never_fit(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=4 * GIB)
    first = await scheduler.allocate(project, cpu_millis=1000)
    waiting = await scheduler.allocate(project, cpu_millis=1000)
    assert waiting["state"] == "queued"

    raised = {"cpu_millis": 2000, "memory_bytes": 4 * GIB, "accelerators": {}}
    await scheduler.http.put(f"/projects/{project}/quota", json=raised, headers=ACME)
    assert await scheduler.state(waiting["id"]) == "admitted"

    third = await scheduler.allocate(project, cpu_millis=2000)
    lowered = {"cpu_millis": 1500, "memory_bytes": 4 * GIB, "accelerators": {}}
    await scheduler.http.put(f"/projects/{project}/quota", json=lowered, headers=ACME)
    assert await scheduler.state(third["id"]) == "rejected"
    assert await scheduler.state(first["id"]) == "admitted"  # what already holds resources keeps them


async def test_the_same_request_key_returns_the_same_allocation(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)

    first = await scheduler.allocate(project, request_key="job-1:attempt-1")
    again = await scheduler.http.post(
        "/allocations",
        json={
            "project_id": project,
            "per_worker": {"cpu_millis": 1000, "memory_bytes": 1},
            "request_key": "job-1:attempt-1",
        },
        headers=ACME,
    )

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    listed = (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json()
    assert [a["id"] for a in listed] == [first["id"]]


async def test_another_tenant_sees_neither_projects_nor_allocations(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)

    assert (await scheduler.http.get("/projects", headers=GLOBEX)).json() == []
    for path in (f"/projects/{project}", f"/projects/{project}/usage", f"/allocations/{granted['id']}"):
        response = await scheduler.http.get(path, headers=GLOBEX)
        assert response.status_code == 404, path
    quota = {"cpu_millis": 9, "memory_bytes": 9, "accelerators": {}}
    assert (
        await scheduler.http.put(f"/projects/{project}/quota", json=quota, headers=GLOBEX)
    ).status_code == 404
    cancel = await scheduler.http.post(f"/allocations/{granted['id']}/cancel", headers=GLOBEX)
    assert cancel.status_code == 404, cancel.text
    stolen = {"project_id": project, "per_worker": {"cpu_millis": 1, "memory_bytes": 1}}
    assert (await scheduler.http.post("/allocations", json=stolen, headers=GLOBEX)).status_code == 404
    assert await scheduler.state(granted["id"]) == "admitted"


async def test_projects_are_listed_per_tenant_and_names_are_unique_in_a_tenant(
    scheduler: SchedulerService,
) -> None:
    await scheduler.project("vision")
    await scheduler.project("vision", headers=GLOBEX)

    duplicate = await scheduler.http.post("/projects", json={"name": "vision"}, headers=ACME)

    assert duplicate.status_code == 409
    assert [p["name"] for p in (await scheduler.http.get("/projects", headers=ACME)).json()] == ["vision"]
    assert [p["queue"] for p in (await scheduler.http.get("/projects", headers=GLOBEX)).json()] == [
        "globex-vision"
    ]


async def test_releasing_an_allocation_that_is_not_running_is_a_409_and_changes_nothing(
    scheduler: SchedulerService, events: EventLog
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)

    response = await scheduler.http.post(f"/allocations/{granted['id']}/release", headers=ACME)

    assert response.status_code == 409
    assert response.json()["current_state"] == "admitted"
    after = (await scheduler.http.get(f"/allocations/{granted['id']}", headers=ACME)).json()
    assert (after["state"], after["sequence"]) == ("admitted", 3)
    await scheduler.http.post(f"/allocations/{granted['id']}/cancel", headers=ACME)
    again = await scheduler.http.post(f"/allocations/{granted['id']}/cancel", headers=ACME)
    assert again.status_code == 409 and again.json()["current_state"] == "cancelled"
    published = await events.of(granted["id"], 4)
    assert [e.sequence for e in published] == [1, 2, 3, 4]
    assert published[-1].type == "forge.scheduler.allocation.cancelled.v1"


async def test_bad_input_is_a_422_naming_the_field(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    cases = {
        "body.gang_size": {
            "project_id": project,
            "gang_size": 0,
            "per_worker": {"cpu_millis": 1, "memory_bytes": 1},
        },
        "body.per_worker.cpu_millis": {
            "project_id": project,
            "per_worker": {"cpu_millis": 0, "memory_bytes": 1},
        },
        "body.per_worker.accelerators": {
            "project_id": project,
            "per_worker": {"cpu_millis": 1, "memory_bytes": 1, "accelerators": {"not a kind": 1}},
        },
        "body.per_worker": {
            "project_id": project,
            "per_worker": {
                "cpu_millis": 1,
                "memory_bytes": 1,
                "accelerators": {GPU: 1, "huawei.com/Ascend910": 1},
            },
        },
        "body.priority": {
            "project_id": project,
            "priority": 5000,
            "per_worker": {"cpu_millis": 1, "memory_bytes": 1},
        },
    }
    for field, body in cases.items():
        response = await scheduler.http.post("/allocations", json=body, headers=ACME)
        assert response.status_code == 422, (field, response.text)
        assert field in response.json()["detail"], (field, response.json()["detail"])

    negative = {"cpu_millis": -1, "memory_bytes": 1}
    response = await scheduler.http.put(f"/projects/{project}/quota", json=negative, headers=ACME)
    assert response.status_code == 422 and "body.cpu_millis" in response.json()["detail"]
    missing_tenant = await scheduler.http.get("/projects")
    assert missing_tenant.status_code == 422 and "x-forge-tenant" in missing_tenant.json()["detail"]
    bad_tenant = await scheduler.http.get("/projects", headers={"x-forge-tenant": "Not A Slug"})
    assert bad_tenant.status_code == 422
    assert (await scheduler.http.get("/allocations", headers=ACME)).json() == []
