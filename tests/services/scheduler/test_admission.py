"""Projects, quotas and admission over HTTP, and the events each allocation transition publishes."""

from __future__ import annotations

import asyncio
import uuid

from tests.identity import as_user, grant
from tests.services.scheduler.conftest import (
    ACME,
    ACME_ADMIN,
    ACME_SERVICE,
    GIB,
    GLOBEX,
    GLOBEX_ADMIN,
    GLOBEX_SERVICE,
    EventLog,
    SchedulerService,
)

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
        f"/allocations/{holder['id']}/cancel", json={"reason": "done early"}, headers=ACME_SERVICE
    )

    assert cancelled.json()["state"] == "cancelled"
    # the higher priority one arrived later but goes first; it takes the whole quota
    assert await scheduler.state(high["id"]) == "admitted"
    assert await scheduler.state(low["id"]) == "queued"
    await scheduler.http.post(f"/allocations/{high['id']}/cancel", headers=ACME_SERVICE)
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
    await scheduler.http.put(f"/projects/{project}/quota", json=raised, headers=ACME_ADMIN)
    assert await scheduler.state(waiting["id"]) == "admitted"

    third = await scheduler.allocate(project, cpu_millis=2000)
    lowered = {"cpu_millis": 1500, "memory_bytes": 4 * GIB, "accelerators": {}}
    await scheduler.http.put(f"/projects/{project}/quota", json=lowered, headers=ACME_ADMIN)
    assert await scheduler.state(third["id"]) == "rejected"
    assert await scheduler.state(first["id"]) == "admitted"  # what already holds resources keeps them


async def test_the_same_request_key_with_the_same_request_returns_the_same_allocation(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)

    first = await scheduler.allocate(project, request_key="job-1:attempt-1")
    again = await scheduler.http.post(
        "/allocations",
        json={  # the same request, with its defaults left out
            "project_id": project,
            "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB, "accelerators": {GPU: 0}},
            "request_key": "job-1:attempt-1",
        },
        headers=ACME_SERVICE,
    )

    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    listed = (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json()
    assert [a["id"] for a in listed] == [first["id"]]


async def test_the_same_request_key_with_another_request_is_a_422_naming_the_key(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=2000, memory_bytes=2 * GIB)
    other = await scheduler.project("other", cpu_millis=2000, memory_bytes=2 * GIB)
    first = await scheduler.allocate(project, request_key="job-2:attempt-1")
    same = {
        "project_id": project,
        "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB},
        "request_key": "job-2:attempt-1",
    }
    changes = {
        "bigger": {**same, "per_worker": {"cpu_millis": 2000, "memory_bytes": GIB}},
        "gang": {**same, "gang_size": 2},
        "priority": {**same, "priority": 5},
        "project": {**same, "project_id": other},
        "workload": {**same, "workload": {"kind": "gang-probe"}},
    }

    for change, body in changes.items():
        response = await scheduler.http.post("/allocations", json=body, headers=ACME_SERVICE)
        assert response.status_code == 422, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "request_key 'job-2:attempt-1'" in response.json()["detail"], change

    listed = (await scheduler.http.get("/allocations", headers=ACME)).json()
    assert [a["id"] for a in listed] == [first["id"]]
    assert (await scheduler.http.post("/allocations", json=same, headers=ACME_SERVICE)).status_code == 200


async def test_concurrent_requests_with_one_key_make_one_allocation_and_all_get_it(
    scheduler: SchedulerService,
) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    body = {
        "project_id": project,
        "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB},
        "request_key": "job-3:attempt-1",
    }
    headers = dict(ACME_SERVICE)  # one token for all twenty

    responses = await asyncio.gather(
        *(scheduler.http.post("/allocations", json=body, headers=headers) for _ in range(20))
    )

    assert sorted(r.status_code for r in responses) == [200] * 19 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = (await scheduler.http.get(f"/allocations?project_id={project}", headers=ACME)).json()
    assert [a["id"] for a in listed] == [responses[0].json()["id"]]
    assert listed[0]["state"] == "admitted"


async def test_another_tenant_sees_neither_projects_nor_allocations(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)

    assert (await scheduler.http.get("/projects", headers=GLOBEX)).json() == []
    for path in (f"/projects/{project}", f"/projects/{project}/usage", f"/allocations/{granted['id']}"):
        response = await scheduler.http.get(path, headers=GLOBEX)
        assert response.status_code == 404, path
    quota = {"cpu_millis": 9, "memory_bytes": 9, "accelerators": {}}
    assert (
        await scheduler.http.put(f"/projects/{project}/quota", json=quota, headers=GLOBEX_ADMIN)
    ).status_code == 404
    cancel = await scheduler.http.post(f"/allocations/{granted['id']}/cancel", headers=GLOBEX_SERVICE)
    assert cancel.status_code == 404, cancel.text
    stolen = {"project_id": project, "per_worker": {"cpu_millis": 1, "memory_bytes": 1}}
    assert (await scheduler.http.post("/allocations", json=stolen, headers=GLOBEX_SERVICE)).status_code == 404
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

    response = await scheduler.http.post(f"/allocations/{granted['id']}/release", headers=ACME_SERVICE)

    assert response.status_code == 409
    assert response.json()["current_state"] == "admitted"
    after = (await scheduler.http.get(f"/allocations/{granted['id']}", headers=ACME)).json()
    assert (after["state"], after["sequence"]) == ("admitted", 3)
    await scheduler.http.post(f"/allocations/{granted['id']}/cancel", headers=ACME_SERVICE)
    again = await scheduler.http.post(f"/allocations/{granted['id']}/cancel", headers=ACME_SERVICE)
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
        response = await scheduler.http.post("/allocations", json=body, headers=ACME_SERVICE)
        assert response.status_code == 422, (field, response.text)
        assert field in response.json()["detail"], (field, response.json()["detail"])

    negative = {"cpu_millis": -1, "memory_bytes": 1}
    response = await scheduler.http.put(f"/projects/{project}/quota", json=negative, headers=ACME_ADMIN)
    assert response.status_code == 422 and "body.cpu_millis" in response.json()["detail"]
    missing_tenant = await scheduler.http.get("/projects")
    assert missing_tenant.status_code == 401  # no bearer token
    bad_tenant = await scheduler.http.get("/projects", headers=ACME.in_tenant("Not A Slug"))
    assert bad_tenant.status_code == 422
    assert (await scheduler.http.get("/allocations", headers=ACME)).json() == []


async def test_hyphens_never_make_two_tenants_projects_share_a_queue(
    scheduler: SchedulerService, directory: str
) -> None:
    base = f"q{uuid.uuid4().hex[:8]}"
    hyphenated_tenant, plain_tenant = f"{base}-b", base  # `<base>-b` + `c` and `<base>` + `b-c`
    for tenant in (hyphenated_tenant, plain_tenant):
        await asyncio.to_thread(grant, directory, tenant, "alice", ["tenant-admin"])

    one = await scheduler.http.post(
        "/projects", json={"name": "c"}, headers=ACME.in_tenant(hyphenated_tenant)
    )
    two = await scheduler.http.post("/projects", json={"name": "b-c"}, headers=ACME.in_tenant(plain_tenant))

    assert (one.status_code, two.status_code) == (201, 201), (one.text, two.text)
    assert one.json()["queue"] != two.json()["queue"]
    assert (one.json()["queue"], two.json()["queue"]) == (f"{base}--b-c", f"{base}-b--c")
    long = await scheduler.http.post("/projects", json={"name": "p" * 63}, headers=ACME)
    assert long.status_code == 201, long.text
    queue = long.json()["queue"]
    assert len(queue) <= 63 and queue.startswith("acme-ppp") and queue[-1].isalnum()


async def test_an_ml_engineer_can_neither_create_projects_nor_set_quotas(
    scheduler: SchedulerService, directory: str
) -> None:
    tenant, engineer = f"ml{uuid.uuid4().hex[:8]}", f"mle{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(grant, directory, tenant, engineer, ["ml-engineer"])
    await asyncio.to_thread(grant, directory, tenant, "dave", ["tenant-admin"])
    as_engineer = as_user(engineer, tenant)
    project = await scheduler.project("shared", headers=as_user("dave", tenant))
    quota = {"cpu_millis": 64000, "memory_bytes": 64 * GIB, "accelerators": {GPU: 8}}

    created = await scheduler.http.post("/projects", json={"name": "mine"}, headers=as_engineer)
    raised = await scheduler.http.put(f"/projects/{project}/quota", json=quota, headers=as_engineer)

    assert created.status_code == 403, created.text
    assert raised.status_code == 403, raised.text
    assert "scheduler.quota.manage" in raised.json()["detail"]
    listed = (await scheduler.http.get("/projects", headers=as_engineer)).json()
    assert [(p["name"], p["quota"]["cpu_millis"]) for p in listed] == [("shared", 0)]


async def test_a_tenant_admin_cannot_set_the_quota_of_their_own_project(scheduler: SchedulerService) -> None:
    project = await scheduler.project()  # alice, a tenant admin, created it
    quota = {"cpu_millis": 64000, "memory_bytes": 64 * GIB, "accelerators": {}}

    own = await scheduler.http.put(f"/projects/{project}/quota", json=quota, headers=ACME)
    as_service = await scheduler.http.put(f"/projects/{project}/quota", json=quota, headers=ACME_SERVICE)

    assert own.status_code == 403, own.text
    assert as_service.status_code == 403, as_service.text
    found = (await scheduler.http.get(f"/projects/{project}", headers=ACME)).json()
    assert found["quota"]["cpu_millis"] == 0
    by_admin = await scheduler.http.put(f"/projects/{project}/quota", json=quota, headers=ACME_ADMIN)
    assert by_admin.status_code == 200, by_admin.text


async def test_only_forge_services_request_or_run_allocations(scheduler: SchedulerService) -> None:
    project = await scheduler.project(cpu_millis=1000, memory_bytes=GIB)
    granted = await scheduler.allocate(project)
    body = {"project_id": project, "per_worker": {"cpu_millis": 1000, "memory_bytes": GIB}}

    for user in (ACME, ACME_ADMIN):
        assert (await scheduler.http.post("/allocations", json=body, headers=user)).status_code == 403
        run = await scheduler.http.post(
            f"/allocations/{granted['id']}/run", json={"kind": "gang-probe"}, headers=user
        )
        assert run.status_code == 403, run.text
    assert await scheduler.state(granted["id"]) == "admitted"
