"""Files of every kind (DS-1): CSV and Parquet records, media blobs checked against their names, and
archives expanded into a draft version by a background task — with zip-slip, links, corrupt archives
and bad members refused, leaving the version as it was."""

from __future__ import annotations

import io
import tarfile
import uuid
import zipfile
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import ACME, create_dataset, create_version, jsonl, upload
from tests.services.dataset.test_splits import split_done


def png(width: int = 8, height: int = 6, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def parquet(table: dict[str, list[Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(table), out)
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w", links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return out.getvalue()


async def _version(svc: DatasetService, dataset_id: str, version_id: str) -> dict[str, Any]:
    response = await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)
    return dict(response.json())


async def _expand(
    svc: DatasetService, dataset_id: str, version_id: str, name: str, data: bytes, prefix: str = ""
) -> Any:
    return await svc.http.put(
        f"/datasets/{dataset_id}/versions/{version_id}/files/{name}",
        params={"expand": "true", "prefix": prefix},
        content=data,
        headers=ACME,
    )


async def test_csv_parquet_and_media_files_are_checked_counted_and_published(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"mixed-{uuid.uuid4().hex[:8]}", modality="image")
    version_id = await create_version(svc, dataset_id)
    csv_data = b'id,text,label\n1,"hello, ""world""\nacross lines",pos\n2,plain,neg\n3,,neg\n'
    table = parquet({"id": [1, 2, 3, 4], "label": ["cat", "dog", "cat", None]})
    uploads = {
        "labels.csv": csv_data,
        "tables/features.parquet": table,
        "images/cat/001.png": png(),
        "notes.jsonl": jsonl([{"id": 1}]),
    }
    for name, data in uploads.items():
        response = await upload(svc, dataset_id, version_id, name, data)
        assert response.status_code == 200, response.text

    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)

    assert published.status_code == 200, published.text
    files = {f["name"]: f for f in published.json()["files"]}
    assert {n: (f["format"], f["media_type"], f["record_count"]) for n, f in files.items()} == {
        "images/cat/001.png": (None, "image/png", 0),
        "labels.csv": ("csv", "text/csv", 3),
        "notes.jsonl": ("jsonl", "application/x-ndjson", 1),
        "tables/features.parquet": ("parquet", "application/vnd.apache.parquet", 4),
    }
    assert published.json()["item_count"] == 8
    stats = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/stats", headers=ACME)).json()
    label = stats["fields"]["label"]
    counts = {v["value"]: v["count"] for v in label["values"]}
    assert label["present"] == 6 and counts == {"cat": 2, "dog": 1, "neg": 2, "pos": 1}
    manifest = await svc.store.read_all(f"tenants/acme/manifests/{published.json()['manifest_sha256']}.json")
    assert b'"media_type":"image/png"' in manifest and b'"format":"parquet"' in manifest


async def test_a_file_that_is_not_what_its_name_says_is_a_422_and_nothing_is_added(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"bad-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    bad = {
        "cat.png": (b"<html><body>sign in</body></html>", "not image/png"),
        "table.parquet": (b"PAR1 but not really", "not a readable Parquet file"),
        "rows.csv": (b"a,b\n1,2\n3,4,5\n", "line 3: 3 columns where the header has 2"),
        "open.csv": (b'a,b\n1,"never closed\n', "quoted field is not closed"),
        "clip.wav": (b"RIFF\x00\x00\x00\x00AVI LIST", "not audio/wav"),
    }

    for name, (data, reason) in bad.items():
        response = await upload(svc, dataset_id, version_id, name, data)
        assert response.status_code == 422, (name, response.text)
        assert reason in response.json()["detail"], (name, response.json()["detail"])

    assert (await _version(svc, dataset_id, version_id))["files"] == []


async def test_a_zip_is_expanded_into_the_draft_under_a_prefix_and_publishes(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"zip-{uuid.uuid4().hex[:8]}", modality="image")
    version_id = await create_version(svc, dataset_id)
    members = {f"cats/{i:03d}.png": png(colour=(i, 0, 0)) for i in range(20)}
    members["labels.jsonl"] = jsonl([{"file": f"cats/{i:03d}.png", "label": "cat"} for i in range(20)])
    members["__MACOSX/cats/._000.png"] = b"junk"
    members["cats/.DS_Store"] = b"junk"
    archive = zip_of(members)

    started = await _expand(svc, dataset_id, version_id, "batch1.zip", archive, prefix="images")
    again = await _expand(svc, dataset_id, version_id, "batch1.zip", archive, prefix="images")

    assert started.status_code == 202, started.text
    assert again.status_code in (200, 202) and again.json()["id"] == started.json()["id"]
    task = await split_done(svc, dataset_id, started.json()["id"])
    assert task["state"] == "succeeded", task
    assert task["kind"] == "expand" and task["stats"]["files"] == 21 and task["stats"]["skipped"] == 2
    assert task["stats"]["records"] == 20
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert published.status_code == 200, published.text
    names = sorted(f["name"] for f in published.json()["files"])
    assert names == sorted(f"images/{n}" for n in members if "DS_Store" not in n and "MACOSX" not in n)
    image = next(f for f in published.json()["files"] if f["name"] == "images/cats/007.png")
    assert image["media_type"] == "image/png"
    assert await svc.store.read_all(image["object_key"]) == members["cats/007.png"]


async def test_a_tar_gz_is_expanded_like_a_zip(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"tgz-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    big = jsonl([{"id": i, "text": "x" * 200} for i in range(40_000)])  # larger than one part: streamed
    archive = tar_of({"data/train.jsonl": big, "data/test.csv": b"id,text\n1,a\n"}, mode="w:gz")

    started = await _expand(svc, dataset_id, version_id, "data.tar.gz", archive)

    task = await split_done(svc, dataset_id, started.json()["id"])
    assert task["state"] == "succeeded", task
    files = {f["name"]: f for f in (await _version(svc, dataset_id, version_id))["files"]}
    assert files["data/train.jsonl"]["record_count"] == 40_000
    assert files["data/train.jsonl"]["size_bytes"] == len(big) and files["data/test.csv"]["record_count"] == 1


async def _refused(svc: DatasetService, name: str, archive: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    dataset_id = await create_dataset(svc, name=f"unsafe-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    await upload(svc, dataset_id, version_id, "keep.jsonl", jsonl([{"id": 1}]))
    started = await _expand(svc, dataset_id, version_id, name, archive)
    assert started.status_code == 202, started.text
    task = await split_done(svc, dataset_id, started.json()["id"])
    return task, await _version(svc, dataset_id, version_id)


async def test_zip_slip_links_and_corrupt_archives_fail_the_task_and_change_nothing(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    ok = jsonl([{"id": 2}])
    cases = {
        "slip.zip": (zip_of({"fine.jsonl": ok, "../../etc/cron.d/evil.jsonl": ok}), "zip-slip"),
        "abs.tar": (tar_of({"/etc/passwd.jsonl": ok}), "zip-slip"),
        "link.tar": (tar_of({"fine.jsonl": ok}, links={"escape.jsonl": "/etc/shadow"}), "link"),
        "corrupt.zip": (b"PK\x03\x04" + b"\x00garbage" * 50, "not a readable zip or tar archive"),
        "badrow.zip": (zip_of({"fine.jsonl": ok, "bad.jsonl": b'{"id": \n'}), "bad.jsonl line 1"),
        "fake.zip": (zip_of({"cat.png": b"<html>"}), "not image/png"),
    }
    for name, (archive, reason) in cases.items():
        task, version = await _refused(svc, name, archive)
        assert task["state"] == "failed" and reason in task["error"], (name, task)
        assert task["error"].startswith(name), task["error"]
        assert [f["name"] for f in version["files"]] == ["keep.jsonl"], name
    async with svc.store.client() as s3:
        listed = await s3.list_objects_v2(Bucket=svc.store.bucket, Prefix="tenants/acme/staging/")
    assert [o["Key"] for o in listed.get("Contents", []) if "archive-" in o["Key"]] == []


async def test_expanding_something_that_is_not_an_archive_is_a_422(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"notarc-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)

    not_archive = await _expand(svc, dataset_id, version_id, "rows.jsonl", jsonl([{"id": 1}]))
    fake_zip = await _expand(svc, dataset_id, version_id, "rows.zip", b"<html>")

    assert not_archive.status_code == 422 and "not a zip or tar archive" in not_archive.json()["detail"]
    assert fake_zip.status_code == 422 and "application/zip" in fake_zip.json()["detail"]
