"""The dataset bucket: streaming multipart uploads, content-addressed copies, streaming reads."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aioboto3
from botocore.exceptions import ClientError

from forge_dataset.settings import DatasetSettings

MAX_SINGLE_COPY_BYTES = 5 * 1024**3  # S3's limit for one CopyObject
COPY_PART_BYTES = 512 * 1024**2


class ObjectStore:
    """One bucket on the S3 API. The kit's `s3_client` takes the stack's settings (with a secret key
    object), not a service's, so the client is built here from ServiceSettings' plain fields."""

    def __init__(self, settings: DatasetSettings) -> None:
        self.bucket = settings.dataset_bucket
        self.part_bytes = settings.upload_part_bytes
        self.parts_in_flight = settings.upload_parts_in_flight
        self._settings = settings
        self._session = aioboto3.Session()
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def client(self) -> Any:
        s = self._settings
        return self._session.client(
            "s3",
            endpoint_url=s.s3_endpoint,
            aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key,
            region_name=s.s3_region,
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (once per process)."""
        if self._bucket_ready:
            return
        async with self._bucket_lock, self.client() as s3:
            if self._bucket_ready:
                return
            try:
                await s3.head_bucket(Bucket=self.bucket)
            except ClientError:
                try:
                    await s3.create_bucket(Bucket=self.bucket)
                except ClientError as error:
                    if error.response["Error"]["Code"] not in {
                        "BucketAlreadyOwnedByYou",
                        "BucketAlreadyExists",
                    }:
                        raise
            self._bucket_ready = True

    async def write_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        on_part: Callable[[bytes], Awaitable[None]],
        on_end: Callable[[], Awaitable[None]],
    ) -> None:
        """Multipart-upload `chunks` to `key` in parts of `part_bytes` (the last may be smaller). `on_part`
        sees each part, in order, before it is sent and `on_end` runs before the upload completes; if
        either (or anything else) raises, the upload is aborted: nothing is written.

        Up to `parts_in_flight` parts are sent while the next one is read and checked, so reading the
        source and writing to S3 overlap (one after the other they would add up): memory is bounded by
        `parts_in_flight + 1` parts."""
        await self.ensure_bucket()
        async with self.client() as s3:
            upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=key)
            upload_id = upload["UploadId"]
            etags: dict[int, str] = {}
            sending: set[asyncio.Task[None]] = set()

            async def send(number: int, part: bytes) -> None:
                sent = await s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                etags[number] = sent["ETag"]

            async def settle(wait: int) -> None:
                """Wait until at most `wait` parts are in flight; a failed part raises."""
                while len(sending) > wait:
                    done, _ = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                    sending.difference_update(done)
                    for task in done:
                        task.result()

            numbers = itertools.count(1)

            async def submit(part: bytes) -> None:
                await on_part(part)
                await settle(self.parts_in_flight - 1)
                sending.add(asyncio.create_task(send(next(numbers), part)))

            try:
                # One buffer, and each part copied out of it once: joining the held chunks and then
                # slicing the join held three copies of a part at a time.
                buffer = bytearray()
                async for chunk in chunks:
                    buffer += chunk
                    while len(buffer) >= self.part_bytes:
                        with memoryview(buffer) as view:
                            part = view[: self.part_bytes].tobytes()
                        del buffer[: self.part_bytes]
                        await submit(part)
                        del part
                if buffer or not (etags or sending):
                    await submit(bytes(buffer))
                await settle(0)
                await on_end()
                parts = [{"PartNumber": number, "ETag": etags[number]} for number in sorted(etags)]
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                for task in sending:
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise

    async def put(self, key: str, data: bytes) -> None:
        """Write small `data` (a manifest, a split file held in memory) in one request or in parts."""
        await self.ensure_bucket()
        if len(data) <= self.part_bytes:
            async with self.client() as s3:
                await s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            return

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        async def nothing(*_: Any) -> None:
            return None

        await self.write_stream(key, chunks(), on_part=nothing, on_end=nothing)

    async def put_file(self, key: str, path: Path) -> None:
        """Stream a local file (a task's output) to `key`, one part in memory at a time."""

        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as file:
                while chunk := await asyncio.to_thread(file.read, self.part_bytes):
                    yield chunk

        async def nothing(*_: Any) -> None:
            return None

        await self.write_stream(key, chunks(), on_part=nothing, on_end=nothing)

    # resumable uploads: one multipart upload, its parts sent by the client in any order

    async def start_multipart(self, key: str) -> str:
        await self.ensure_bucket()
        async with self.client() as s3:
            return str((await s3.create_multipart_upload(Bucket=self.bucket, Key=key))["UploadId"])

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        async with self.client() as s3:
            sent = await s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        return str(sent["ETag"])

    async def parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        """The parts received so far ({PartNumber, Size, ETag}), in number order."""
        found: list[dict[str, Any]] = []
        marker = 0
        async with self.client() as s3:
            while True:
                page = await s3.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                found += page.get("Parts", [])
                if not page.get("IsTruncated"):
                    return sorted(found, key=lambda p: int(p["PartNumber"]))
                marker = int(page["NextPartNumberMarker"])

    async def complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        listed = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
        async with self.client() as s3:
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        async with self.client() as s3:
            try:
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as error:
                if error.response["Error"]["Code"] != "NoSuchUpload":
                    raise

    async def size(self, key: str, bucket: str | None = None) -> int | None:
        """The object's size, or None when it does not exist."""
        async with self.client() as s3:
            try:
                head = await s3.head_object(Bucket=bucket or self.bucket, Key=key)
            except ClientError as error:
                if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise
        return int(head["ContentLength"])

    async def copy(
        self, source_key: str, key: str, size_bytes: int, source_bucket: str | None = None
    ) -> None:
        """Copy an object into this bucket (server side; in parts above S3's 5 GiB single-copy limit)."""
        await self.ensure_bucket()
        source = {"Bucket": source_bucket or self.bucket, "Key": source_key}
        async with self.client() as s3:
            if size_bytes <= MAX_SINGLE_COPY_BYTES:
                await s3.copy_object(Bucket=self.bucket, Key=key, CopySource=source)
                return
            upload_id = (await s3.create_multipart_upload(Bucket=self.bucket, Key=key))["UploadId"]
            parts = []
            try:
                for number, start in enumerate(range(0, size_bytes, COPY_PART_BYTES), start=1):
                    end = min(start + COPY_PART_BYTES, size_bytes) - 1
                    done = await s3.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource=source,
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                    parts.append({"PartNumber": number, "ETag": done["CopyPartResult"]["ETag"]})
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise

    async def presign_get(self, keys: list[str], expires_s: int, bucket: str | None = None) -> list[str]:
        """Links that read the objects for `expires_s` without credentials (what a runtime gets: never the
        service's keys)."""
        async with self.client() as s3:
            return [
                await s3.generate_presigned_url(
                    "get_object", Params={"Bucket": bucket or self.bucket, "Key": key}, ExpiresIn=expires_s
                )
                for key in keys
            ]

    async def list_prefix(self, bucket: str, prefix: str, limit: int = 10_000) -> list[str]:
        """The keys under `prefix` in `bucket` (at most `limit`)."""
        keys: list[str] = []
        async with self.client() as s3:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
                if len(keys) >= limit:
                    break
        return keys[:limit]

    async def delete(self, key: str) -> None:
        async with self.client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def read(self, key: str, bucket: str | None = None) -> AsyncGenerator[bytes, None]:
        """The object's bytes in chunks, streamed (stop iterating to stop reading)."""
        async with self.client() as s3:
            response = await s3.get_object(Bucket=bucket or self.bucket, Key=key)
            body = response["Body"]
            try:
                async for chunk in body.iter_chunks(1024 * 1024):
                    yield chunk
            finally:
                body.close()

    async def read_all(self, key: str) -> bytes:
        chunks = [chunk async for chunk in self.read(key)]
        return b"".join(chunks)

    async def read_range(
        self, key: str, start: int, end: int, bucket: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Bytes `start`..`end` (inclusive) of the object in chunks, streamed by one ranged GetObject."""
        async with self.client() as s3:
            response = await s3.get_object(
                Bucket=bucket or self.bucket, Key=key, Range=f"bytes={start}-{end}"
            )
            body = response["Body"]
            try:
                async for chunk in body.iter_chunks(1024 * 1024):
                    yield chunk
            finally:
                body.close()
