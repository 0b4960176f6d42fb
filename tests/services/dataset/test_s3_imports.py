"""Imports from S3 (DS-1) on the real stack: a bucket of its own in the stack's MinIO, registered as a
connection, its objects under a prefix imported with the connection's credentials (names relative to
the prefix, an `include` glob), and what cannot be imported failing with the reason, nothing published."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

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


class CuttingProxy:
    """A TCP proxy in front of the stack's MinIO that drops one connection once the answers on it pass
    `cut_after` bytes (a large object's body, mid-way), and notes the Range headers it forwards."""

    def __init__(self, upstream: tuple[str, int], cut_after: int) -> None:
        self.upstream, self.cut_after = upstream, cut_after
        self.cuts = 0
        self.ranges: list[str] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def requests() -> None:
            while data := await reader.read(65536):
                self.ranges += re.findall(r"(?im)^range: (bytes=\S+)", data.decode("latin-1"))
                up_writer.write(data)
                await up_writer.drain()

        async def answers() -> None:
            sent = 0
            while data := await up_reader.read(65536):
                if not self.cuts and sent + len(data) > self.cut_after:
                    writer.write(data[: self.cut_after - sent])
                    await writer.drain()
                    self.cuts += 1
                    return
                sent += len(data)
                writer.write(data)
                await writer.drain()

        forward = asyncio.create_task(requests())
        try:
            await answers()
        finally:
            forward.cancel()
            for w in (writer, up_writer):
                w.close()


async def test_a_broken_object_download_is_resumed_with_a_ranged_get(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    big = jsonl([{"id": i, "text": f"record {i} " + "x" * 80} for i in range(30_000)])  # ~3 MiB
    await _put(stack_settings, s3_bucket, {"big/train.jsonl": big})
    minio = urlsplit(stack_settings.s3_endpoint)
    proxy = CuttingProxy((minio.hostname or "127.0.0.1", minio.port or 80), cut_after=1_000_000)
    endpoint = await proxy.start()
    connection = await register(svc, s3_connection(stack_settings, s3_bucket, endpoint=endpoint))
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(svc, dataset_id, {"connection_id": connection["id"], "prefix": "big/"})

    assert done["state"] == "succeeded" and done["attempt"] == 1, done
    assert done["stats"]["records"] == 30_000 and proxy.cuts == 1
    assert len(proxy.ranges) == 1 and proxy.ranges[0].startswith("bytes=") and proxy.ranges[0] != "bytes=0-"
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert version["files"][0]["sha256"] == hashlib.sha256(big).hexdigest()
