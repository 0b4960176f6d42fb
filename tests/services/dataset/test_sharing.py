"""Sharing datasets with other tenants (DS-5), on the real stack: a grant lets another tenant read the
dataset (or one version of it) until it is revoked, checked on every read, activities included; the
secrecy rule (forge_kit.secrecy) refuses secret data and data above the grantee's clearance; a grantee
never writes; grants are events on the dataset topic and entries in the audit trail."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from forge_contracts.activities.dataset import PUBLISH_DERIVED_VERSION, RESOLVE_VERSION, ResolvedVersion
from forge_contracts.events.audit import AuditEntryRecorded
from sqlalchemy import text
from temporalio.client import WorkflowFailureError

from tests.identity import as_user, grant
from tests.services.dataset.conftest import DatasetService, EventLog
from tests.services.dataset.test_dataset_service import (
    ACME,
    GLOBEX,
    call_activity,
    create_dataset,
    create_version,
    jsonl,
    rows,
    upload,
)

ADA = as_user("ada")  # a platform admin (realm role), member of no tenant


async def _published(svc: DatasetService, dataset_id: str, n: int = 3) -> str:
    version_id = await create_version(svc, dataset_id)
    assert (await upload(svc, dataset_id, version_id, "train.jsonl", jsonl(rows(n)))).status_code == 200
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert published.status_code == 200, published.text
    return version_id


async def _dataset(svc: DatasetService, secrecy: str = "internal") -> str:
    return await create_dataset(svc, name=f"shared-{uuid.uuid4().hex[:8]}", secrecy=secrecy)


async def _share(svc: DatasetService, dataset_id: str, headers: Any = ACME, **body: Any) -> Any:
    return await svc.http.post(
        f"/datasets/{dataset_id}/grants", json={"grantee_tenant": "globex", **body}, headers=headers
    )


async def _set_clearance(svc: DatasetService, tenant: str, level: Any) -> Any:
    return await svc.http.put(
        f"/clearances/{tenant}", json={"level": level}, headers=ADA | {"x-forge-tenant": tenant}
    )


async def test_a_grantee_reads_the_shared_dataset_until_the_grant_is_revoked(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc)
    v1 = await _published(svc, dataset_id, 5)
    draft = await create_version(svc, dataset_id)
    base = f"/datasets/{dataset_id}"

    shared = await _share(svc, dataset_id)
    assert shared.status_code == 201, shared.text
    grant_id = shared.json()["id"]
    assert shared.json() | {"granted_at": None} == {
        "id": grant_id,
        "dataset_id": dataset_id,
        "tenant": "acme",
        "grantee_tenant": "globex",
        "version_id": None,
        "access": "read",
        "granted_by": "alice",
        "granted_at": None,
        "revoked_by": None,
        "revoked_at": None,
    }
    listed = (await svc.http.get("/shared-datasets", headers=GLOBEX)).json()
    assert [(d["id"], d["owner_tenant"], [g["id"] for g in d["grants"]]) for d in listed] == [
        (dataset_id, "acme", [grant_id])
    ]
    assert (await svc.http.get(base, headers=GLOBEX)).json()["id"] == dataset_id
    versions = (await svc.http.get(f"{base}/versions", headers=GLOBEX)).json()
    assert [v["id"] for v in versions] == [v1]  # published versions only, never the draft
    assert (await svc.http.get(f"{base}/versions/{draft}", headers=GLOBEX)).status_code == 404
    version = (await svc.http.get(f"{base}/versions/{v1}", headers=GLOBEX)).json()
    assert [f["name"] for f in version["files"]] == ["train.jsonl"]
    preview = (await svc.http.get(f"{base}/versions/{v1}/preview", headers=GLOBEX)).json()
    assert [r["instruction"] for r in preview["records"]][:2] == ["question 0", "question 1"]
    stats = await svc.http.get(f"{base}/versions/{v1}/stats", headers=GLOBEX)
    assert stats.status_code == 200 and stats.json()["records"] == 5
    lineage = (await svc.http.get(f"{base}/versions/{v1}/lineage", headers=GLOBEX)).json()
    assert [s["id"] for s in lineage["chain"]] == [v1]
    assert [d["id"] for d in (await svc.http.get("/datasets", headers=GLOBEX)).json()] == []  # its own

    revoked = await svc.http.request(
        "DELETE", f"{base}/grants/{grant_id}", json={"reason": "ended"}, headers=ACME
    )
    assert revoked.status_code == 204, revoked.text
    assert (await svc.http.get(base, headers=GLOBEX)).status_code == 404
    assert (await svc.http.get(f"{base}/versions/{v1}/preview", headers=GLOBEX)).status_code == 404
    assert (await svc.http.get("/shared-datasets", headers=GLOBEX)).json() == []
    again = await svc.http.delete(f"{base}/grants/{grant_id}", headers=ACME)
    assert again.status_code == 409, again.text
    assert (await svc.http.get(f"{base}/grants", headers=ACME)).json() == []
    history = (await svc.http.get(f"{base}/grants", params={"revoked": True}, headers=ACME)).json()
    assert [(g["id"], g["revoked_by"]) for g in history] == [(grant_id, "alice")]

    seen = [e for e in await events.of(dataset_id, 3) if e.type.startswith("forge.dataset.grant.")]
    assert [(e.type, e.data["grant_id"], e.data["actor"]) for e in seen] == [
        ("forge.dataset.grant.created.v1", grant_id, "alice"),
        ("forge.dataset.grant.revoked.v1", grant_id, "alice"),
    ]
    assert seen[0].data["secrecy"] == "internal" and seen[1].data["reason"] == "ended"
    assert seen[0].sequence < seen[1].sequence  # one order with the dataset's alias moves


async def test_grants_and_revocations_are_in_the_audit_trail(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc)
    grant_id = (await _share(svc, dataset_id)).json()["id"]
    assert (
        await svc.http.delete(f"/datasets/{dataset_id}/grants/{grant_id}", headers=ACME)
    ).status_code == 204

    async with svc.runtime.db.session() as session:
        connection = await session.connection()
        values = (
            await connection.execute(
                text("SELECT value FROM outbox WHERE event_type = :t ORDER BY id"),
                {"t": AuditEntryRecorded.event_type},
            )
        ).scalars()
        entries = [json.loads(bytes(v)) for v in values]
    changes = [(e["action"], e["actor"], e["tenant_id"]) for e in entries if e["kind"] == "change"]
    assert ("forge.dataset.grant.created.v1", "alice", "acme") in changes
    assert ("forge.dataset.grant.revoked.v1", "alice", "acme") in changes
    requests = [(e["action"], e["outcome"]) for e in entries if e["kind"] == "request"]
    assert ("POST /datasets/{dataset_id}/grants", "succeeded") in requests


async def test_a_version_grant_shares_that_version_only(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc)
    v1 = await _published(svc, dataset_id)
    v2 = await _published(svc, dataset_id)

    shared = await _share(svc, dataset_id, version_id=v2)

    assert shared.status_code == 201, shared.text
    base = f"/datasets/{dataset_id}/versions"
    assert [v["id"] for v in (await svc.http.get(base, headers=GLOBEX)).json()] == [v2]
    assert (await svc.http.get(f"{base}/{v2}", headers=GLOBEX)).status_code == 200
    assert (await svc.http.get(f"{base}/{v1}", headers=GLOBEX)).status_code == 404
    assert (await svc.http.get(f"{base}/{v1}/preview", headers=GLOBEX)).status_code == 404
    assert (await svc.http.get(f"{base}/{v1}/stats", headers=GLOBEX)).status_code == 404


async def test_secret_data_never_leaves_its_tenant(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc, secrecy="secret")
    assert (await _set_clearance(svc, "globex", "confidential")).status_code == 200

    refused = await _share(svc, dataset_id)

    assert refused.status_code == 422, refused.text
    assert "secret data never leaves its tenant" in refused.json()["detail"]
    assert (await _set_clearance(svc, "globex", "secret")).status_code == 422  # nobody is cleared for it
    assert (await svc.http.get(f"/datasets/{dataset_id}", headers=GLOBEX)).status_code == 404


async def test_confidential_data_is_shared_only_with_a_tenant_cleared_for_it(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc, secrecy="confidential")
    v1 = await _published(svc, dataset_id)
    cleared = (await svc.http.get("/clearances/globex", headers=GLOBEX)).json()
    assert (cleared["level"], cleared["default"]) == ("internal", True)

    refused = await _share(svc, dataset_id)
    assert refused.status_code == 422, refused.text
    assert "cleared up to internal" in refused.json()["detail"]

    raised = await _set_clearance(svc, "globex", "confidential")
    assert raised.status_code == 200, raised.text
    assert (raised.json()["level"], raised.json()["set_by"]) == ("confidential", "ada")
    assert (await _share(svc, dataset_id)).status_code == 201
    assert (await svc.http.get(f"/datasets/{dataset_id}/versions/{v1}", headers=GLOBEX)).status_code == 200

    assert (await _set_clearance(svc, "globex", "internal")).status_code == 200  # lowered: reads stop
    assert (await svc.http.get(f"/datasets/{dataset_id}/versions/{v1}", headers=GLOBEX)).status_code == 404
    assert (await svc.http.get("/shared-datasets", headers=GLOBEX)).json() == []
    moves = await events.of("globex", 2)
    assert [(e.type, e.data["level"], e.data["previous_level"]) for e in moves] == [
        ("forge.dataset.clearance.set.v1", "confidential", "internal"),
        ("forge.dataset.clearance.set.v1", "internal", "confidential"),
    ]


async def test_only_a_platform_admin_sets_a_clearance(dataset_service: DatasetService) -> None:
    svc = dataset_service

    own = await svc.http.put("/clearances/acme", json={"level": "confidential"}, headers=ACME)
    other = await svc.http.put("/clearances/globex", json={"level": "confidential"}, headers=as_user("alice"))

    assert own.status_code == 403, own.text  # a tenant admin may not clear their own tenant
    assert other.status_code == 404, other.text  # nor name a tenant they are not in


async def test_a_grantee_cannot_write_the_shared_dataset(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc)
    v1 = await _published(svc, dataset_id)
    grant_id = (await _share(svc, dataset_id, access="read+derive")).json()["id"]
    base = f"/datasets/{dataset_id}"

    attempts = [
        await svc.http.post(f"{base}/versions", headers=GLOBEX),
        await svc.http.put(f"{base}/versions/{v1}/files/x.jsonl", content=jsonl(rows(1)), headers=GLOBEX),
        await svc.http.post(f"{base}/versions/{v1}/publish", headers=GLOBEX),
        await svc.http.post(f"{base}/versions/{v1}/deprecate", json={}, headers=GLOBEX),
        await svc.http.put(f"{base}/aliases/golden", json={"version_id": v1}, headers=GLOBEX),
        await svc.http.post(f"{base}/grants", json={"grantee_tenant": "acme"}, headers=GLOBEX),
        await svc.http.delete(f"{base}/grants/{grant_id}", headers=GLOBEX),
        await svc.http.get(f"{base}/grants", headers=GLOBEX),
    ]

    assert [a.status_code for a in attempts] == [404] * len(attempts), [a.text for a in attempts]
    assert (await svc.http.get(f"{base}/versions/{v1}", headers=ACME)).json()["state"] == "published"


async def test_a_grant_is_made_by_the_owners_admins_to_another_existing_tenant_once(
    dataset_service: DatasetService, directory: str
) -> None:
    svc = dataset_service
    engineer = f"engineer-{uuid.uuid4().hex[:6]}"
    grant(directory, "acme", engineer, ["ml-engineer"])
    dataset_id = await _dataset(svc)
    draft = await create_version(svc, dataset_id)

    by_engineer = await _share(svc, dataset_id, headers=as_user(engineer, "acme"))
    to_itself = await _share(svc, dataset_id, grantee_tenant="acme")
    to_nobody = await _share(svc, dataset_id, grantee_tenant=f"nowhere-{uuid.uuid4().hex[:6]}")
    of_a_draft = await _share(svc, dataset_id, version_id=draft)
    first = await _share(svc, dataset_id)
    twice = await _share(svc, dataset_id, access="read+derive")
    with_project = await _share(svc, dataset_id, grantee_project="p1")

    assert by_engineer.status_code == 403, by_engineer.text
    assert to_itself.status_code == 422 and "tenant-wide" in to_itself.json()["detail"]
    assert to_nobody.status_code == 422 and "does not exist" in to_nobody.json()["detail"]
    assert of_a_draft.status_code == 409, of_a_draft.text
    assert first.status_code == 201 and twice.status_code == 409, twice.text
    assert with_project.status_code == 422  # datasets are tenant-wide: no project grants


async def test_a_revoked_grant_stops_the_next_activity_read(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc)
    v1 = await _published(svc, dataset_id, 4)
    grant_id = (await _share(svc, dataset_id, version_id=v1)).json()["id"]
    ref = {"tenant_id": "globex", "dataset_id": dataset_id, "version_id": v1}

    resolved = ResolvedVersion.model_validate(await call_activity(svc, RESOLVE_VERSION, ref))
    assert (resolved.version_id, resolved.item_count) == (v1, 4)
    assert (
        await svc.http.delete(f"/datasets/{dataset_id}/grants/{grant_id}", headers=ACME)
    ).status_code == 204

    with pytest.raises(WorkflowFailureError) as failure:
        await call_activity(svc, RESOLVE_VERSION, ref)
    assert "does not exist" in str(getattr(failure.value.cause, "cause", None))


async def test_read_and_derive_lets_the_grantee_derive_a_version_of_its_own(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await _dataset(svc)
    v1 = await _published(svc, dataset_id)
    created = await svc.http.post(
        "/datasets",
        json={
            "name": f"mine-{uuid.uuid4().hex[:6]}",
            "modality": "text",
            "secrecy": "internal",
            "licence": "proprietary",
            "source": "derived",
        },
        headers=GLOBEX,
    )
    own_id = created.json()["id"]
    await svc.store.put("exports/globex/cleaned.jsonl", jsonl(rows(2)))
    request = {
        "tenant_id": "globex",
        "dataset_id": own_id,
        "parent_version_id": v1,
        "operation": "clean",
        "parameters": {},
        "files": [{"name": "cleaned.jsonl", "object_key": "exports/globex/cleaned.jsonl"}],
    }
    read_only = (await _share(svc, dataset_id)).json()["id"]

    with pytest.raises(WorkflowFailureError):
        await call_activity(svc, PUBLISH_DERIVED_VERSION, {**request, "request_id": "derive-1"})
    await svc.http.delete(f"/datasets/{dataset_id}/grants/{read_only}", headers=ACME)
    assert (await _share(svc, dataset_id, access="read+derive")).status_code == 201
    derived = ResolvedVersion.model_validate(
        await call_activity(svc, PUBLISH_DERIVED_VERSION, {**request, "request_id": "derive-2"})
    )

    assert (derived.tenant_id, derived.parent_version_id) == ("globex", v1)
    lineage = await svc.http.get(f"/datasets/{own_id}/versions/{derived.version_id}/lineage", headers=GLOBEX)
    assert [s["id"] for s in lineage.json()["chain"]] == [derived.version_id, v1]
