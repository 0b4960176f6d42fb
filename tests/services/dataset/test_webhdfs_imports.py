"""Imports from HDFS over WebHDFS (DS-1) as background tasks, against a real HDFS: Hadoop's MiniDFSCluster
(tests/services/dataset/hdfs.py), on loopback ports the tests' dataset service is allowed to reach. The
test writes its files with WebHDFS CREATE (the NameNode redirects the write to the DataNode); the
import reads them with OPEN, through the same redirect, each hop checked by the egress guard."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import ACME, create_dataset, jsonl
from tests.services.dataset.test_splits import split_done

USER = "forge"
TRAIN = jsonl([{"id": i, "text": f"line {i}"} for i in range(1500)])
EVAL = jsonl([{"id": i, "text": f"eval {i}"} for i in range(300)])


async def hdfs_put(hdfs_url: str, path: str, body: bytes) -> None:
    """WebHDFS CREATE: the NameNode answers with a redirect to a DataNode, which takes the bytes."""
    async with httpx.AsyncClient(timeout=30) as client:
        asked = await client.put(
            f"{hdfs_url}/webhdfs/v1{path}", params={"op": "CREATE", "user.name": USER, "overwrite": "true"}
        )
        assert asked.status_code == 307, asked.text
        written = await client.put(
            asked.headers["location"], content=body, headers={"content-type": "application/octet-stream"}
        )
        assert written.status_code == 201, written.text


def _folder() -> str:
    return f"/imports/{uuid.uuid4().hex[:12]}"


async def _import(svc: DatasetService, dataset_id: str, hdfs_url: str, path: str, **extra: Any) -> Any:
    source = {"type": "webhdfs", "url": hdfs_url, "path": path, "user": USER, **extra}
    return await svc.http.post(f"/datasets/{dataset_id}/imports", json={"source": source}, headers=ACME)


async def _versions(svc: DatasetService, dataset_id: str) -> list[dict[str, Any]]:
    return list((await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json())


async def test_a_webhdfs_import_publishes_a_folder_of_files_checked_and_counted(
    dataset_service: DatasetService, hdfs_url: str
) -> None:
    svc, folder = dataset_service, _folder()
    await hdfs_put(hdfs_url, f"{folder}/train.jsonl", TRAIN)
    await hdfs_put(hdfs_url, f"{folder}/eval/part-00000.jsonl", EVAL)
    await hdfs_put(hdfs_url, f"{folder}/_SUCCESS", b"")  # Hadoop's marker: hidden, never imported
    await hdfs_put(hdfs_url, f"{folder}/eval/.part-00000.jsonl.crc", b"crc")
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    started = await _import(svc, dataset_id, hdfs_url, folder)

    assert started.status_code == 202, started.text
    done = await split_done(svc, dataset_id, started.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["stats"] == {"files": 2, "records": 1800, "bytes": len(TRAIN) + len(EVAL)}
    assert (done["progress"], done["progress_detail"]["phase"]) == (1.0, "publishing")
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert (version["state"], version["source"], version["operation"]) == ("published", "hdfs", "import")
    files = {f["name"]: f for f in version["files"]}
    assert {name: (f["sha256"], f["record_count"]) for name, f in files.items()} == {
        "eval/part-00000.jsonl": (hashlib.sha256(EVAL).hexdigest(), 300),
        "train.jsonl": (hashlib.sha256(TRAIN).hexdigest(), 1500),
    }
    assert await svc.store.read_all(files["eval/part-00000.jsonl"]["object_key"]) == EVAL
    again = await _import(svc, dataset_id, hdfs_url, folder)
    assert (again.status_code, again.json()["id"]) == (200, done["id"])


async def test_a_webhdfs_import_of_one_file_or_of_matching_files(
    dataset_service: DatasetService, hdfs_url: str
) -> None:
    svc, folder = dataset_service, _folder()
    await hdfs_put(hdfs_url, f"{folder}/a/train.jsonl", TRAIN)
    await hdfs_put(hdfs_url, f"{folder}/a/notes.txt", b"not records")
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    one = await split_done(
        svc, dataset_id, (await _import(svc, dataset_id, hdfs_url, f"{folder}/a/train.jsonl")).json()["id"]
    )
    matching = await split_done(
        svc, dataset_id, (await _import(svc, dataset_id, hdfs_url, folder, include="*.jsonl")).json()["id"]
    )

    assert (one["state"], one["stats"]["records"]) == ("succeeded", 1500), one
    assert (matching["state"], matching["stats"]["files"]) == ("succeeded", 1), matching
    names = {
        version_id: [
            f["name"]
            for f in (
                await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)
            ).json()["files"]
        ]
        for version_id in (one["output_version_id"], matching["output_version_id"])
    }
    assert names == {
        one["output_version_id"]: ["train.jsonl"],
        matching["output_version_id"]: ["a/train.jsonl"],
    }


async def test_a_bad_jsonl_file_in_hdfs_fails_the_import_with_its_line_and_no_version(
    dataset_service: DatasetService, hdfs_url: str
) -> None:
    svc, folder = dataset_service, _folder()
    broken = b'{"id": 1}\n{"id": \n'
    await hdfs_put(hdfs_url, f"{folder}/broken.jsonl", broken)
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    started = await _import(svc, dataset_id, hdfs_url, folder)

    assert started.status_code == 202, started.text
    done = await split_done(svc, dataset_id, started.json()["id"])
    assert done["state"] == "failed" and "broken.jsonl line 2: not valid JSON" in done["error"], done
    assert done["attempt"] == 1  # what the user must fix is not retried
    detail = done["progress_detail"]
    assert (detail["phase"], detail["bytes_done"], detail["files_done"]) == ("downloading", len(broken), 0)
    assert await _versions(svc, dataset_id) == []


async def test_a_missing_hdfs_path_is_a_422_before_any_task(
    dataset_service: DatasetService, hdfs_url: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    refused = await _import(svc, dataset_id, hdfs_url, f"{_folder()}/nothing-here")

    assert refused.status_code == 422, refused.text
    assert "does not exist in HDFS" in refused.json()["detail"]
    assert (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json() == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254:9870", "not a public address"),
        ("http://10.1.2.3:9870", "not a public address"),
        ("http://no-such-host.invalid:9870", "cannot be resolved"),
    ],
)
async def test_namenodes_the_service_may_not_reach_are_a_422(
    dataset_service: DatasetService, url: str, reason: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    refused = await _import(svc, dataset_id, url, "/data")

    assert refused.status_code == 422, refused.text
    assert reason in refused.json()["detail"]
