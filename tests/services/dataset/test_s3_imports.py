"""Imports from S3 (DS-1) on the real stack: a bucket of its own in the stack's MinIO, registered as a
connection, its objects under a prefix imported with the connection's credentials (names relative to
the prefix, an `include` glob), and what cannot be imported failing with the reason, nothing published."""

from __future__ import annotations

import uuid
from typing import Any

from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_connections import connections_key as connections_key
from tests.services.dataset.test_connections import register, s3_connection
from tests.services.dataset.test_dataset_service import ACME, create_dataset, jsonl
from tests.services.dataset.test_splits import split_done

TRAIN = jsonl([{"id": i, "text": f"train {i}"} for i in range(300)])
TEST = jsonl([{"id": i, "text": f"test {i}"} for i in range(100)])


async def _put(stack_settings: StackSettings, bucket: str, objects: dict[str, bytes]) -> None:
    async with s3_client(stack_settings) as s3:
        for key, body in objects.items():
            await s3.put_object(Bucket=bucket, Key=key, Body=body)


async def _import(svc: DatasetService, dataset_id: str, source: dict[str, Any]) -> dict[str, Any]:
    started = await svc.http.post(
        f"/datasets/{dataset_id}/imports", json={"source": {"type": "s3", **source}}, headers=ACME
    )
    assert started.status_code == 202, started.text
    return await split_done(svc, dataset_id, started.json()["id"])


async def test_objects_under_a_prefix_become_a_published_version(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    await _put(
        stack_settings,
        s3_bucket,
        {
            "corpus/v1/train.jsonl": TRAIN,
            "corpus/v1/eval/test.jsonl": TEST,
            "corpus/v1/README.md": b"# notes",
        },
    )
    connection = await register(svc, s3_connection(stack_settings, s3_bucket))
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(
        svc, dataset_id, {"connection_id": connection["id"], "prefix": "corpus/v1/", "include": "*.jsonl"}
    )

    assert done["state"] == "succeeded", done
    assert done["stats"] == {"files": 2, "records": 400, "bytes": len(TRAIN) + len(TEST)}
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert version["source"] == "s3"
    assert {f["name"]: f["record_count"] for f in version["files"]} == {
        "eval/test.jsonl": 100,
        "train.jsonl": 300,
    }
    by_name = {f["name"]: f for f in version["files"]}
    assert await svc.store.read_all(by_name["train.jsonl"]["object_key"]) == TRAIN


async def test_an_s3_import_of_bad_records_fails_and_publishes_nothing(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    await _put(stack_settings, s3_bucket, {"in/broken.jsonl": b'{"id": 1}\n{"id": \n'})
    connection = await register(svc, s3_connection(stack_settings, s3_bucket))
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(svc, dataset_id, {"connection_id": connection["id"], "prefix": "in/"})

    assert done["state"] == "failed" and "broken.jsonl line 2" in done["error"], done
    assert (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json() == []


async def test_an_empty_prefix_fails_the_import(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    connection = await register(svc, s3_connection(stack_settings, s3_bucket))
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(svc, dataset_id, {"connection_id": connection["id"], "prefix": "nothing/"})

    assert done["state"] == "failed" and "no files to import" in done["error"], done


async def test_an_import_from_another_tenants_or_a_missing_connection_is_not_found(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    refused = await svc.http.post(
        f"/datasets/{dataset_id}/imports",
        json={"source": {"type": "s3", "connection_id": "0190-missing", "prefix": ""}},
        headers=ACME,
    )

    assert refused.status_code == 404, refused.text
    assert (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json() == []
