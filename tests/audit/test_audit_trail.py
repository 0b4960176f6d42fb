"""The audit trail end to end (MT-5): a service's changes and its callers' requests travel through its
outbox onto `forge.audit.events`, the directory (a real scheduler process) keeps them, and tenant admins
read them through `GET /audit`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from forge_contracts.envelope import EventEnvelope
from forge_contracts.events.audit import AuditEntryRecorded
from forge_dataset.app import create_app
from forge_dataset.settings import DatasetSettings
from forge_kit.db import Database, migrate
from forge_kit.stack_env import StackSettings
from forge_scheduler.app import MIGRATIONS
from forge_scheduler.audit.service import entries, expire, on_audit_event

from tests.harness import service_settings, serving
from tests.identity import as_user, grant
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("directory")

DATASET = {
    "name": "audited",
    "modality": "text",
    "secrecy": "internal",
    "licence": "cc0-1.0",
    "source": "upload",
}


@pytest.fixture
async def dataset(
    stack_settings: StackSettings, database: str, s3_bucket: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = DatasetSettings(
        **service_settings(stack_settings, database, "dataset").model_dump(), dataset_bucket=s3_bucket
    )
    async with serving(create_app(settings)) as http:
        yield http


@pytest.fixture
def tenant(directory: str) -> dict[str, Any]:
    """A fresh tenant with an admin, an ML engineer and a viewer (users made for this test)."""
    name = f"audit-{uuid.uuid4().hex[:8]}"
    people = {
        role: f"{role.split('-')[0]}-{uuid.uuid4().hex[:6]}"
        for role in ("tenant-admin", "ml-engineer", "viewer")
    }
    for role, user in people.items():
        grant(directory, name, user, [role])
    return {"id": name, **{role: as_user(user, name) for role, user in people.items()}, "users": people}


async def _trail(directory: str, reader: Any, **query: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=directory, timeout=30) as http:
        response = await http.get("/audit", params=query, headers=reader)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_change_and_its_request_are_in_the_tenant_admins_trail(
    dataset: httpx.AsyncClient, directory: str, tenant: dict[str, Any]
) -> None:
    made = await dataset.post("/datasets", json=DATASET, headers=tenant["ml-engineer"])
    assert made.status_code == 201, made.text
    created = await dataset.post(f"/datasets/{made.json()['id']}/versions", headers=tenant["ml-engineer"])
    assert created.status_code == 201, created.text
    version_id = created.json()["id"]
    engineer = tenant["users"]["ml-engineer"]

    async def all_three() -> list[dict[str, Any]] | None:
        found = await _trail(directory, tenant["tenant-admin"], actor=engineer)
        return found if len(found) >= 3 else None  # two requests, one change (the new version)

    found = await eventually(all_three, timeout_s=60, what="the changes and the requests in the trail")
    [change] = [e for e in found if e["kind"] == "change"]
    requests = {e["action"]: e for e in found if e["kind"] == "request"}
    assert (change["resource_id"], change["service"], change["outcome"]) == (
        version_id,
        "dataset",
        "succeeded",
    )
    assert change["action"] == "forge.dataset.version.created.v1" and change["tenant_id"] == tenant["id"]
    request = requests["POST /datasets/{dataset_id}/versions"]
    assert (request["status_code"], request["outcome"]) == (201, "succeeded")
    assert request["request_id"] == created.headers["x-request-id"] == change["request_id"]
    assert requests["POST /datasets"]["request_id"] == made.headers["x-request-id"]


async def test_a_refused_request_is_in_the_trail_as_denied(
    dataset: httpx.AsyncClient, directory: str, tenant: dict[str, Any]
) -> None:
    refused = await dataset.post("/datasets", json=DATASET, headers=tenant["viewer"])
    assert refused.status_code == 403
    viewer = tenant["users"]["viewer"]

    async def denied() -> list[dict[str, Any]] | None:
        found = await _trail(directory, tenant["tenant-admin"], actor=viewer, outcome="denied")
        return found or None

    [entry] = await eventually(denied, timeout_s=60, what="the denied request in the trail")
    assert (entry["action"], entry["status_code"]) == ("POST /datasets", 403)


async def test_only_the_tenants_admins_read_its_trail(directory: str, tenant: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=directory, timeout=30) as http:
        as_viewer = await http.get("/audit", headers=tenant["viewer"])
        elsewhere = await http.get("/audit", headers=tenant["tenant-admin"].in_tenant("acme"))
        platform = await http.get("/audit/platform", headers=tenant["tenant-admin"])
        anonymous = await http.get("/audit")
    assert as_viewer.status_code == 403
    assert elsewhere.status_code == 404  # another tenant's trail does not exist for this admin
    assert platform.status_code == 403
    assert anonymous.status_code == 401


async def test_entries_older_than_the_retention_period_are_removed(database: str) -> None:
    await migrate(database, MIGRATIONS)
    db = Database(database)
    try:
        now = datetime.now(UTC)
        for age_days in (400, 10):
            entry = AuditEntryRecorded(
                entry_id=str(uuid.uuid4()),
                kind="change",
                tenant_id="acme",
                occurred_at=now - timedelta(days=age_days),
                service="registry",
                actor="alice",
                actor_kind="user",
                action="forge.registry.version.released.v1",
                resource_type="version",
                resource_id=f"v-{age_days}",
                outcome="succeeded",
            )
            event = EventEnvelope(
                source="/forge/registry",
                type=entry.event_type,
                subject=entry.resource_id,
                tenantid="acme",
                sequence=1,
                data=entry.model_dump(mode="json"),
            )
            async with db.transaction() as session:
                await on_audit_event(event, session)
                await on_audit_event(event, session)  # a copy is kept once

        assert await expire(db, retention_days=365) == 1
        assert [e.resource_id for e in await entries(db, "acme")] == ["v-10"]
    finally:
        await db.dispose()
