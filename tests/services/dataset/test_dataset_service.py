"""The dataset service, end to end on the real stack: datasets, streamed uploads, immutable content-
addressed versions, reproducible splits with lineage, previews, events and its Temporal activities."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from forge_contracts.activities.dataset import PUBLISH_DERIVED_VERSION, RESOLVE_VERSION, ResolvedVersion
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from tests.identity import as_user
from tests.services.dataset.conftest import PART_BYTES, DatasetService, EventLog
from tests.services.dataset.workflows import ActivityCall, CallDatasetActivity

ACME = as_user("alice", "acme")
GLOBEX = as_user("eve", "globex")
INSTRUCTIONS = {
    "name": "support-sft",
    "description": "Support tickets as instructions",
    "modality": "text",
    "secrecy": "internal",
    "licence": "proprietary",
    "source": "upload",
    "schema_hint": {"fields": ["instruction", "input", "output"]},
}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def rows(n: int, labels: tuple[str, ...] = ("a",), pad: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "instruction": f"question {i}",
            "output": f"answer {i} " + "x" * pad,
            "label": labels[i % len(labels)],
        }
        for i in range(n)
    ]


async def create_dataset(svc: DatasetService, **overrides: Any) -> str:
    response = await svc.http.post("/datasets", json={**INSTRUCTIONS, **overrides}, headers=ACME)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def create_version(svc: DatasetService, dataset_id: str) -> str:
    response = await svc.http.post(f"/datasets/{dataset_id}/versions", headers=ACME)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def upload(svc: DatasetService, dataset_id: str, version_id: str, name: str, data: bytes) -> Any:
    async def body() -> AsyncIterator[bytes]:  # streamed in pieces, as a large upload would be
        for start in range(0, len(data), 1024 * 1024):
            yield data[start : start + 1024 * 1024]

    return await svc.http.put(
        f"/datasets/{dataset_id}/versions/{version_id}/files/{name}", content=body(), headers=ACME
    )


async def published_version(svc: DatasetService, files: dict[str, bytes]) -> tuple[str, str, dict[str, Any]]:
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    for name, data in files.items():
        assert (await upload(svc, dataset_id, version_id, name, data)).status_code == 200
    response = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert response.status_code == 200, response.text
    return dataset_id, version_id, response.json()


async def object_bytes(svc: DatasetService, key: str) -> bytes:
    return await svc.store.read_all(key)


async def test_an_uploaded_version_publishes_with_a_content_addressed_manifest(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    big = jsonl(rows(40_000, pad=250))  # > 2 parts of 5 MiB: a real multipart upload
    assert len(big) > 2 * PART_BYTES
    small = jsonl(rows(5))
    dataset_id = await create_dataset(svc)
    version_id = await create_version(svc, dataset_id)

    first = await upload(svc, dataset_id, version_id, "train.jsonl", big)
    second = await upload(svc, dataset_id, version_id, "extra.jsonl", small)
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)

    assert first.status_code == 200, first.text
    assert first.json()["record_count"] == 40_000
    assert first.json()["sha256"] == hashlib.sha256(big).hexdigest()
    assert second.json()["record_count"] == 5
    body = published.json()
    assert published.status_code == 200, published.text
    assert body["state"] == "published"
    assert body["item_count"] == 40_005 and body["size_bytes"] == len(big) + len(small)
    manifest_key = body["manifest_uri"].removeprefix(f"s3://{svc.store.bucket}/")
    manifest = await object_bytes(svc, manifest_key)
    assert hashlib.sha256(manifest).hexdigest() == body["manifest_sha256"]
    listed = json.loads(manifest)["files"]
    assert [f["name"] for f in listed] == ["extra.jsonl", "train.jsonl"]
    assert await object_bytes(svc, listed[1]["object_key"]) == big
    assert listed[1]["sha256"] == hashlib.sha256(big).hexdigest()  # the manifest addresses content

    seen = await events.of(version_id, 4)
    assert [(e.type, e.sequence) for e in seen] == [
        ("forge.dataset.version.created.v1", 1),
        ("forge.dataset.version.upload_started.v1", 2),
        ("forge.dataset.version.validation_started.v1", 3),
        ("forge.dataset.version.published.v1", 4),
    ]
    assert seen[-1].data["manifest_sha256"] == body["manifest_sha256"]
    assert seen[0].tenantid == "acme" and seen[0].data["actor"] == "alice"


async def test_publishing_the_same_content_twice_gives_the_same_hash(dataset_service: DatasetService) -> None:
    data = jsonl(rows(10))
    _, first_id, first = await published_version(dataset_service, {"data.jsonl": data})
    _, second_id, second = await published_version(dataset_service, {"data.jsonl": data})
    _, _, other = await published_version(dataset_service, {"data.jsonl": jsonl(rows(11))})

    assert first_id != second_id
    assert first["manifest_sha256"] == second["manifest_sha256"]
    assert other["manifest_sha256"] != first["manifest_sha256"]


async def test_uploading_to_a_published_version_is_a_409_and_changes_nothing(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id, version_id, before = await published_version(svc, {"data.jsonl": jsonl(rows(3))})

    response = await upload(svc, dataset_id, version_id, "data.jsonl", jsonl(rows(4)))
    republish = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)

    assert response.status_code == 409
    assert response.json()["current_state"] == "published"
    assert republish.status_code == 409
    after = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)).json()
    assert after == before


async def test_a_bad_line_is_a_422_naming_it_and_nothing_is_written(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc)
    version_id = await create_version(svc, dataset_id)
    good = rows(
        30_000, pad=200
    )  # past the first 5 MiB part, so a part was already uploaded when the bad line comes
    data = jsonl(good) + b'{"instruction": "ok"}\n[1, 2]\n' + jsonl(rows(10))

    response = await upload(svc, dataset_id, version_id, "data.jsonl", data)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "data.jsonl line 30002" in response.json()["detail"]
    async with svc.store.client() as s3:
        assert (await s3.list_multipart_uploads(Bucket=svc.store.bucket)).get("Uploads", []) == []
        assert (await s3.list_objects_v2(Bucket=svc.store.bucket)).get("KeyCount") == 0
    version = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)).json()
    assert version["state"] == "draft" and version["files"] == [] and version["sequence"] == 1
    assert [e.type for e in await events.of(version_id, 1)] == ["forge.dataset.version.created.v1"]


async def test_bad_input_is_a_422_problem_naming_the_field(dataset_service: DatasetService) -> None:
    svc = dataset_service
    bad_modality = await svc.http.post("/datasets", json={**INSTRUCTIONS, "modality": "smell"}, headers=ACME)
    no_tenant = await svc.http.post("/datasets", json=INSTRUCTIONS)
    dataset_id = await create_dataset(svc)
    version_id = await create_version(svc, dataset_id)
    no_kind = await upload(svc, dataset_id, version_id, "data", b"a,b\n")
    hidden = await upload(svc, dataset_id, version_id, "images/.secret.png", b"a,b\n")
    empty = await upload(svc, dataset_id, version_id, "data.jsonl", b"\n\n")

    assert bad_modality.status_code == 422
    assert bad_modality.json()["errors"][0]["location"] == "body.modality"
    assert no_tenant.status_code == 401  # no bearer token
    for bad_name in (no_kind, hidden):
        assert bad_name.status_code == 422 and "filename" in bad_name.json()["detail"]
    assert empty.status_code == 422 and "no records" in empty.json()["detail"]


async def test_another_tenants_dataset_is_not_found(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id, version_id, _ = await published_version(svc, {"data.jsonl": jsonl(rows(3))})
    base = f"/datasets/{dataset_id}"

    listed = await svc.http.get("/datasets", headers=GLOBEX)
    responses = [
        await svc.http.get(base, headers=GLOBEX),
        await svc.http.get(f"{base}/versions/{version_id}", headers=GLOBEX),
        await svc.http.get(f"{base}/versions/{version_id}/preview", headers=GLOBEX),
        await svc.http.get(f"{base}/versions/{version_id}/lineage", headers=GLOBEX),
        await svc.http.post(f"{base}/versions", headers=GLOBEX),
        await svc.http.post(f"{base}/versions/{version_id}/split", json={**SPLIT, "seed": 1}, headers=GLOBEX),
    ]

    assert listed.json() == []
    assert [r.status_code for r in responses] == [404] * len(responses)
    assert (await svc.http.get(base, headers=ACME)).status_code == 200


async def test_preview_shows_the_first_records_of_a_text_version(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id, version_id, _ = await published_version(svc, {"data.jsonl": jsonl(rows(20))})

    response = await svc.http.get(
        f"/datasets/{dataset_id}/versions/{version_id}/preview?limit=3", headers=ACME
    )

    assert response.status_code == 200
    assert [r["instruction"] for r in response.json()["records"]] == [
        "question 0",
        "question 1",
        "question 2",
    ]
    assert response.json()["files"][0]["record_count"] == 20


SPLIT = {"ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}}


async def call_activity(svc: DatasetService, activity: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run the activity from a workflow on another task queue, as another service's workflow would."""
    client = svc.runtime.temporal
    assert client is not None
    queue = f"test-caller-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[CallDatasetActivity]):
        return await client.execute_workflow(
            CallDatasetActivity.run,
            ActivityCall(activity=activity, task_queue=svc.runtime.task_queue, payload=payload),
            id=f"test-dataset-{uuid.uuid4()}",
            task_queue=queue,
        )


async def test_activities_resolve_a_version_and_publish_a_derived_one_idempotently(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id, source_id, source = await published_version(svc, {"data.jsonl": jsonl(rows(6))})
    export = jsonl(rows(4, ("labeled",)))
    await svc.store.put("exports/labeling/run-1.jsonl", export)
    request = {
        "tenant_id": "acme",
        "dataset_id": dataset_id,
        "parent_version_id": source_id,
        "operation": "labeling_export",
        "parameters": {"project": "p1"},
        "files": [{"name": "labeled.jsonl", "object_key": "exports/labeling/run-1.jsonl"}],
        "request_id": "labeling-export-1",
    }

    resolved = ResolvedVersion.model_validate(
        await call_activity(
            svc, RESOLVE_VERSION, {"tenant_id": "acme", "dataset_id": dataset_id, "version_id": source_id}
        )
    )
    derived = ResolvedVersion.model_validate(await call_activity(svc, PUBLISH_DERIVED_VERSION, request))
    repeated = ResolvedVersion.model_validate(await call_activity(svc, PUBLISH_DERIVED_VERSION, request))

    assert resolved.manifest_sha256 == source["manifest_sha256"]
    assert resolved.bucket == svc.store.bucket
    assert [(f.name, f.record_count) for f in resolved.files] == [("data.jsonl", 6)]
    assert await object_bytes(svc, resolved.files[0].object_key) == jsonl(rows(6))
    assert derived.state == "published" and derived.parent_version_id == source_id
    assert derived.files[0].sha256 == hashlib.sha256(export).hexdigest()
    assert repeated.version_id == derived.version_id
    versions = (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json()
    assert len(versions) == 2
    lineage = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{derived.version_id}/lineage", headers=ACME)
    ).json()
    assert [s["operation"] for s in lineage["chain"]] == ["labeling_export", None]


async def test_resolving_an_unpublished_version_fails_without_retries(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc)
    version_id = await create_version(svc, dataset_id)

    with pytest.raises(WorkflowFailureError) as failure:
        await call_activity(
            svc, RESOLVE_VERSION, {"tenant_id": "acme", "dataset_id": dataset_id, "version_id": version_id}
        )

    assert "not published" in str(failure.value.cause.cause)


async def test_a_deprecated_version_can_be_restored_but_an_archived_one_cannot(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id, version_id, _ = await published_version(svc, {"data.jsonl": jsonl(rows(3))})
    url = f"/datasets/{dataset_id}/versions/{version_id}"

    deprecated = await svc.http.post(f"{url}/deprecate", json={"reason": "labels fixed in v2"}, headers=ACME)
    restored = await svc.http.post(f"{url}/restore", headers=ACME)
    archived = await svc.http.post(f"{url}/archive", headers=ACME)
    illegal = await svc.http.post(f"{url}/restore", headers=ACME)

    assert deprecated.json()["state"] == "deprecated"
    assert restored.json()["state"] == "published"
    assert archived.json()["state"] == "archived"
    assert illegal.status_code == 409
    assert illegal.json()["current_state"] == "archived" and illegal.json()["transition"] == "restore"
    assert (await svc.http.get(url, headers=ACME)).json() == archived.json()
    seen = await events.of(version_id, 7)
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.type.split(".")[3] for e in seen[4:]] == ["deprecated", "restored", "archived"]
    assert seen[4].data["reason"] == "labels fixed in v2"


async def test_preview_of_an_image_dataset_shows_its_label_records(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name="photos", modality="image")
    version_id = await create_version(svc, dataset_id)
    await upload(svc, dataset_id, version_id, "items.jsonl", jsonl([{"image": "1.png", "label": "cat"}]))

    response = await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/preview", headers=ACME)

    assert response.status_code == 200
    assert response.json()["records"] == [{"image": "1.png", "label": "cat"}]
    assert response.json()["files"][0]["record_count"] == 1
