"""The directory the scheduler owns (tenants, members, roles) over HTTP, on a scheduler whose directory
is its own tables, as in production: platform admins create tenants, tenant admins grant roles, and
what a membership allows is seen on the very next request."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from forge_kit.stack_env import StackSettings
from forge_scheduler.app import app_for, build_runtime

from tests.harness import service_settings, serving
from tests.identity import Caller, as_user

PLATFORM_ADMIN = "ada"


@pytest.fixture
async def directory_http(
    stack_settings: StackSettings, database: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A scheduler that is its own directory (no directory URL: it reads its own tables)."""
    settings = service_settings(stack_settings, database, "scheduler").model_copy(
        update={"directory_url": None}
    )
    runtime = build_runtime(settings, jobs_dir=tmp_path / "jobs")
    async with serving(app_for(runtime)) as http:
        yield http


def fresh(prefix: str) -> str:
    """A name no other test uses (tenants and users are shared by the whole identity provider)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def _tenant_with_admin(http: httpx.AsyncClient) -> tuple[str, Caller]:
    tenant, admin = fresh("t"), fresh("admin")
    created = await http.post(
        "/tenants", json={"id": tenant, "admins": [admin]}, headers=as_user(PLATFORM_ADMIN)
    )
    assert created.status_code == 201, created.text
    return tenant, as_user(admin, tenant)


async def test_a_platform_admin_creates_a_tenant_with_its_first_admin(
    directory_http: httpx.AsyncClient,
) -> None:
    tenant, first = fresh("t"), fresh("admin")

    created = await directory_http.post(
        "/tenants",
        json={"id": tenant, "display_name": "Initech", "admins": [first]},
        headers=as_user(PLATFORM_ADMIN),
    )

    assert created.status_code == 201, created.text
    assert created.json() == {**created.json(), "id": tenant, "display_name": "Initech", "created_by": "ada"}
    as_first = as_user(first, tenant)
    members = await directory_http.get(f"/tenants/{tenant}/members", headers=as_first)
    assert members.status_code == 200, members.text
    assert members.json() == [{"username": first, "roles": ["tenant-admin"], "project_roles": {}}]
    # the first admin can act in the tenant at once: create a scheduler project
    project = await directory_http.post("/projects", json={"name": "research"}, headers=as_first)
    assert project.status_code == 201, project.text


async def test_a_user_who_is_not_a_platform_admin_cannot_create_tenants(
    directory_http: httpx.AsyncClient,
) -> None:
    tenant, admin = await _tenant_with_admin(directory_http)
    wanted = fresh("t")

    refused = await directory_http.post(
        "/tenants", json={"id": wanted, "admins": [admin.username]}, headers=admin.in_tenant(None)
    )

    assert refused.status_code == 403, refused.text
    listed = await directory_http.get("/tenants", headers=admin.in_tenant(None))
    assert [t["id"] for t in listed.json()] == [tenant]
    assert (
        await directory_http.get(f"/tenants/{wanted}", headers=as_user(PLATFORM_ADMIN))
    ).status_code == 404


async def test_a_tenant_admin_grants_replaces_and_removes_roles(directory_http: httpx.AsyncClient) -> None:
    tenant, admin = await _tenant_with_admin(directory_http)
    engineer = fresh("eng")
    project = (await directory_http.post("/projects", json={"name": "vision"}, headers=admin)).json()["id"]
    as_engineer = as_user(engineer, tenant)

    granted = await directory_http.put(
        f"/tenants/{tenant}/members/{engineer}", json={"roles": ["viewer"]}, headers=admin
    )
    assert granted.status_code == 200, granted.text
    assert (await directory_http.get("/projects", headers=as_engineer)).status_code == 200
    assert (
        await directory_http.post("/projects", json={"name": "x"}, headers=as_engineer)
    ).status_code == 403

    replaced = await directory_http.put(
        f"/tenants/{tenant}/members/{engineer}",
        json={"roles": ["tenant-admin"], "project_roles": {project: ["project-admin"]}},
        headers=admin,
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == {
        "username": engineer,
        "roles": ["tenant-admin"],
        "project_roles": {project: ["project-admin"]},
    }
    members = {
        m["username"]: m
        for m in (await directory_http.get(f"/tenants/{tenant}/members", headers=admin)).json()
    }
    assert members[engineer]["roles"] == ["tenant-admin"]  # viewer was replaced, not kept
    assert (
        await directory_http.post("/projects", json={"name": "x"}, headers=as_engineer)
    ).status_code == 201

    removed = await directory_http.delete(f"/tenants/{tenant}/members/{engineer}", headers=admin)
    assert removed.status_code == 204, removed.text
    assert (await directory_http.get("/projects", headers=as_engineer)).status_code == 404  # not a member
    again = await directory_http.delete(f"/tenants/{tenant}/members/{engineer}", headers=admin)
    assert again.status_code == 404
    left = (await directory_http.get(f"/tenants/{tenant}/members", headers=admin)).json()
    assert [m["username"] for m in left] == [admin.username]


async def test_platform_admin_cannot_be_granted_in_a_tenant(directory_http: httpx.AsyncClient) -> None:
    tenant, admin = await _tenant_with_admin(directory_http)
    user = fresh("user")

    for body in (
        {"roles": ["platform-admin"]},
        {"roles": ["viewer"], "project_roles": {str(uuid.uuid4()): ["platform-admin"]}},
    ):
        refused = await directory_http.put(f"/tenants/{tenant}/members/{user}", json=body, headers=admin)
        assert refused.status_code in (400, 422), refused.text
        assert "platform-admin" in refused.json()["detail"]

    members = (await directory_http.get(f"/tenants/{tenant}/members", headers=admin)).json()
    assert [m["username"] for m in members] == [admin.username]
    assert (
        await directory_http.post("/tenants", json={"id": fresh("t")}, headers=as_user(user))
    ).status_code == 403


async def test_a_user_of_another_tenant_sees_the_tenant_as_missing(directory_http: httpx.AsyncClient) -> None:
    tenant, admin = await _tenant_with_admin(directory_http)
    other_tenant, outsider = await _tenant_with_admin(directory_http)

    for method, path, body in (
        ("GET", f"/tenants/{tenant}", None),
        ("GET", f"/tenants/{tenant}/members", None),
        ("PUT", f"/tenants/{tenant}/members/{outsider.username}", {"roles": ["tenant-admin"]}),
        ("DELETE", f"/tenants/{tenant}/members/{admin.username}", None),
    ):
        response = await directory_http.request(method, path, json=body, headers=outsider.in_tenant(None))
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] == f"tenant '{tenant}' does not exist"
    as_header = await directory_http.get("/projects", headers=outsider.in_tenant(tenant))
    assert as_header.status_code == 404
    members = (await directory_http.get(f"/tenants/{tenant}/members", headers=admin)).json()
    assert [m["username"] for m in members] == [admin.username]
    assert other_tenant != tenant


async def test_me_lists_the_callers_tenants_and_roles(directory_http: httpx.AsyncClient) -> None:
    first, admin = await _tenant_with_admin(directory_http)
    second, other_admin = await _tenant_with_admin(directory_http)
    project = (await directory_http.post("/projects", json={"name": "nlp"}, headers=other_admin)).json()["id"]
    user = fresh("user")
    await directory_http.put(
        f"/tenants/{first}/members/{user}", json={"roles": ["ml-engineer", "viewer"]}, headers=admin
    )
    await directory_http.put(
        f"/tenants/{second}/members/{user}",
        json={"roles": ["annotator"], "project_roles": {project: ["project-admin"]}},
        headers=other_admin,
    )

    me = await directory_http.get("/me", headers=as_user(user))

    assert me.status_code == 200, me.text
    profile = me.json()
    assert (profile["username"], profile["kind"], profile["platform_admin"]) == (user, "user", False)
    assert profile["tenant"] is None  # two tenants, none named
    tenants = {t["tenant_id"]: t for t in profile["tenants"]}
    assert set(tenants) == {first, second}
    assert sorted(tenants[first]["roles"]) == ["ml-engineer", "viewer"]
    assert tenants[first]["project_roles"] == {}
    assert tenants[second]["roles"] == ["annotator"]
    assert tenants[second]["project_roles"] == {project: ["project-admin"]}
    # what the roles permit, for the console: an ML engineer runs training, an annotator annotates
    assert "training.run" in tenants[first]["actions"] and "registry.approve" not in tenants[first]["actions"]
    assert "labeling.annotate" in tenants[second]["actions"]
    assert "training.run" not in tenants[second]["actions"]
    in_project = tenants[second]["project_actions"][project]  # an annotator, and the project's admin
    assert "training.run" in in_project and "labeling.annotate" in in_project
    assert tenants[first]["project_actions"] == {}
    in_one = (await directory_http.get("/me", headers=as_user(user, first))).json()
    assert in_one["tenant"] == first
    platform = (await directory_http.get("/me", headers=as_user(PLATFORM_ADMIN))).json()
    assert platform["platform_admin"] is True
    assert "scheduler.quota.manage" in platform["platform_actions"]  # in any tenant
    assert profile["platform_actions"] == []


async def test_creating_one_tenant_ten_times_at_once_creates_it_once(
    directory_http: httpx.AsyncClient,
) -> None:
    tenant = fresh("t")
    headers = dict(as_user(PLATFORM_ADMIN))

    responses = await asyncio.gather(
        *(
            directory_http.post("/tenants", json={"id": tenant, "admins": ["carol"]}, headers=headers)
            for _ in range(10)
        )
    )

    assert sorted(r.status_code for r in responses) == [201] + [409] * 9, [r.text for r in responses]
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["detail"] == f"tenant '{tenant}' already exists"
    members = (await directory_http.get(f"/tenants/{tenant}/members", headers=headers)).json()
    assert members == [{"username": "carol", "roles": ["tenant-admin"], "project_roles": {}}]
