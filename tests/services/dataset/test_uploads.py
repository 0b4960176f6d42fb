"""Uploads on the real stack: resumable uploads in parts (any order, resent, checked on completion),
and every upload written once to its place in the bucket, the same bytes kept once per tenant."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from types import SimpleNamespace
from typing import Any

from forge_dataset.uploads.service import place

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import (
    ACME,
    GLOBEX,
    create_dataset,
    create_version,
    jsonl,
    upload,
)

PART = 5 * 1024 * 1024
DATA = jsonl([{"id": i, "text": f"{i:08d} " + "lorem ipsum " * 8} for i in range(110_000)])  # ~12 MiB


def parts_of(data: bytes) -> list[bytes]:
    return [data[i : i + PART] for i in range(0, len(data), PART)]


async def _start(svc: DatasetService, base: str, **body: Any) -> dict[str, Any]:
    response = await svc.http.post(
        f"{base}/uploads", json={"name": "big.jsonl", "part_bytes": PART, **body}, headers=ACME
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _draft(svc: DatasetService) -> str:
    dataset_id = await create_dataset(svc, name=f"up-{uuid.uuid4().hex[:8]}")
    return f"/datasets/{dataset_id}/versions/{await create_version(svc, dataset_id)}"


async def test_a_resumable_upload_takes_parts_in_any_order_and_resent_until_complete(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    base = await _draft(svc)
    parts = parts_of(DATA)
    assert len(parts) == 3
    started = await _start(svc, base, size_bytes=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())
    at = f"{base}/uploads/{started['id']}"

    for number in (3, 2):
        sent = await svc.http.put(f"{at}/parts/{number}", content=parts[number - 1], headers=ACME)
        assert sent.status_code == 200, sent.text
    short = await svc.http.put(f"{at}/parts/1", content=parts[0][:1000], headers=ACME)  # a broken send
    status = (await svc.http.get(at, headers=ACME)).json()
    early = await svc.http.post(f"{at}/complete", headers=ACME)
    resent = await svc.http.put(f"{at}/parts/1", content=parts[0], headers=ACME)
    done = await svc.http.post(f"{at}/complete", headers=ACME)
    again = await svc.http.post(f"{at}/complete", headers=ACME)

    assert short.status_code == 422 and "must be 5242880 bytes" in short.json()["detail"]
    assert [p["number"] for p in status["parts"]] == [2, 3] and status["state"] == "open"
    assert early.status_code == 422 and "parts 1 have not been received" in early.json()["detail"]
    assert resent.status_code == 200
    assert done.status_code == 200, done.text
    assert done.json()["record_count"] == 110_000 and done.json()["size_bytes"] == len(DATA)
    assert again.status_code == 409
    assert (await svc.http.get(at, headers=ACME)).json()["state"] == "completed"
    assert await svc.store.read_all(done.json()["object_key"]) == DATA
    published = await svc.http.post(f"{base}/publish", headers=ACME)
    assert published.status_code == 200 and published.json()["item_count"] == 110_000


async def test_a_completed_upload_that_fails_its_checks_is_deleted_and_adds_nothing(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    base = await _draft(svc)
    wrong_sha = await _start(svc, base, sha256="0" * 64)
    bad_rows = await _start(svc, base)
    await svc.http.put(f"{base}/uploads/{wrong_sha['id']}/parts/1", content=jsonl([{"id": 1}]), headers=ACME)
    await svc.http.put(f"{base}/uploads/{bad_rows['id']}/parts/1", content=b'{"id": 1}\n[2]\n', headers=ACME)

    sha = await svc.http.post(f"{base}/uploads/{wrong_sha['id']}/complete", headers=ACME)
    rows = await svc.http.post(f"{base}/uploads/{bad_rows['id']}/complete", headers=ACME)

    assert sha.status_code == 422 and "the sha256 is" in sha.json()["detail"]
    assert rows.status_code == 422 and "line 2" in rows.json()["detail"]
    assert (await svc.http.get(f"{base}/uploads/{wrong_sha['id']}", headers=ACME)).json()["state"] == "failed"
    assert (await svc.http.get(base, headers=ACME)).json()["files"] == []
    async with svc.store.client() as s3:
        listed = await s3.list_objects_v2(Bucket=svc.store.bucket, Prefix="tenants/acme/blobs/uploads/")
        uploads = await s3.list_multipart_uploads(
            Bucket=svc.store.bucket, Prefix="tenants/acme/blobs/uploads/"
        )
    assert listed.get("KeyCount", 0) == 0  # the test's own bucket: both objects were deleted
    assert uploads.get("Uploads", []) == []


async def test_concurrent_completes_give_one_file_and_an_abort_drops_the_parts(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    base = await _draft(svc)
    racing = await _start(svc, base)
    dropped = await _start(svc, base, size_bytes=10)
    await svc.http.put(f"{base}/uploads/{racing['id']}/parts/1", content=jsonl([{"id": 1}]), headers=ACME)

    results = await asyncio.gather(
        *(svc.http.post(f"{base}/uploads/{racing['id']}/complete", headers=ACME) for _ in range(4))
    )
    aborted = await svc.http.delete(f"{base}/uploads/{dropped['id']}", headers=ACME)
    late = await svc.http.put(f"{base}/uploads/{dropped['id']}/parts/1", content=b"x" * 10, headers=ACME)
    other = await svc.http.get(f"{base}/uploads/{racing['id']}", headers=GLOBEX)

    assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    assert late.status_code == 409
    assert other.status_code == 404
    assert [f["name"] for f in (await svc.http.get(base, headers=ACME)).json()["files"]] == ["big.jsonl"]


async def test_the_same_bytes_uploaded_twice_are_stored_once(dataset_service: DatasetService) -> None:
    svc = dataset_service
    data = jsonl([{"id": i, "nonce": uuid.uuid4().hex} for i in range(100)])
    first, second = await _draft(svc), await _draft(svc)
    *_, first_dataset, _, first_version = first.split("/")
    *_, second_dataset, _, second_version = second.split("/")

    a = await upload(svc, first_dataset, first_version, "a.jsonl", data)
    b = await upload(svc, second_dataset, second_version, "copy.jsonl", data)

    assert a.status_code == b.status_code == 200
    assert a.json()["object_key"] == b.json()["object_key"]
    assert "/blobs/uploads/" in a.json()["object_key"]
    async with svc.store.client() as s3:
        listed = await s3.list_objects_v2(Bucket=svc.store.bucket, Prefix="tenants/acme/blobs/uploads/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    same = [k for k in keys if await svc.store.size(k) == len(data)]
    assert same == [a.json()["object_key"]]


async def test_a_file_past_2_gib_is_looked_up_by_its_size_as_a_bigint(
    dataset_service: DatasetService,
) -> None:
    """The reuse lookup binds the size as int8: 2**31 bytes and more once answered 500 (int4 overflow)."""
    key = f"tenants/acme/blobs/uploads/{uuid.uuid4()}"
    huge = SimpleNamespace(sha256=hashlib.sha256(b"huge").hexdigest(), size_bytes=3 * 2**30)

    assert await place(dataset_service.app.state.deps, "acme", key, huge) == key  # type: ignore[arg-type]
