"""Bundle I/O: the source directory and the bundle in object storage, and the shared-folder mirror."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aioboto3
from botocore.exceptions import ClientError
from forge_contracts.events.delivery import BundleFile
from forge_kit.settings import ServiceSettings

from forge_delivery.domain import S3Location

CHUNK_BYTES = 8 * 1024 * 1024


def s3_client(settings: ServiceSettings, session: aioboto3.Session) -> Any:
    """An async S3 client for the service's endpoint. (forge_kit.objects.s3_client takes the stack's
    settings, whose secret is a SecretStr; a service has plain ServiceSettings.)"""
    return session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
    )


async def list_files(s3: Any, location: S3Location) -> dict[str, int]:
    """Files directly under the prefix (a model directory is flat): name -> size."""
    files: dict[str, int] = {}
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix, Delimiter="/"):
        for item in page.get("Contents", []):
            name = item["Key"][len(location.prefix) :]
            if name:
                files[name] = int(item["Size"])
    return files


async def read_object(s3: Any, location: S3Location, name: str) -> bytes:
    response = await s3.get_object(Bucket=location.bucket, Key=location.key(name))
    async with response["Body"]:
        data: bytes = await response["Body"].read()
    return data


async def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        await s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket=bucket)


async def copy_object(s3: Any, source: S3Location, target: S3Location, name: str) -> None:
    """Server-side copy (multipart for large objects)."""
    await s3.copy({"Bucket": source.bucket, "Key": source.key(name)}, target.bucket, target.key(name))


async def hash_object(s3: Any, location: S3Location, name: str) -> BundleFile:
    """SHA-256 and size of what is stored, streamed (hashing runs off the event loop)."""
    digest = hashlib.sha256()
    size = 0
    response = await s3.get_object(Bucket=location.bucket, Key=location.key(name))
    async with response["Body"]:  # releases the connection when done
        async for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
            size += len(chunk)
            await asyncio.to_thread(digest.update, chunk)
    return BundleFile(path=name, sha256=digest.hexdigest(), size_bytes=size)


async def put_object(s3: Any, location: S3Location, name: str, data: bytes, content_type: str) -> None:
    await s3.put_object(Bucket=location.bucket, Key=location.key(name), Body=data, ContentType=content_type)


async def delete_keys(s3: Any, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        await s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def staging_dir(final: Path, order_id: str) -> Path:
    """Where a mirror is assembled before it is renamed into place (same filesystem, hidden)."""
    return final.parent / f".{final.name}.staging-{order_id}"


async def download_verified(s3: Any, location: S3Location, file: BundleFile, folder: Path) -> None:
    """Download one bundle file into `folder` (write to a temporary name, fsync, rename), checking its
    size and SHA-256 against what was packed."""
    target = folder / file.path
    partial = target.with_name(f".{target.name}.partial")
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    response = await s3.get_object(Bucket=location.bucket, Key=location.key(file.path))
    handle = await asyncio.to_thread(partial.open, "wb")
    try:
        async with response["Body"]:
            async for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                size += len(chunk)
                await asyncio.to_thread(digest.update, chunk)
                await asyncio.to_thread(handle.write, chunk)
        await asyncio.to_thread(handle.flush)
        await asyncio.to_thread(os.fsync, handle.fileno())
    finally:
        await asyncio.to_thread(handle.close)
    if size != file.size_bytes or digest.hexdigest() != file.sha256:
        raise ValueError(
            f"bundle file {file.path} changed in object storage: expected {file.size_bytes} bytes "
            f"sha256 {file.sha256}, read {size} bytes sha256 {digest.hexdigest()}"
        )
    await asyncio.to_thread(os.replace, partial, target)


def swap_into_place(staging: Path, final: Path, order_id: str) -> None:
    """Rename the assembled folder to its final name; a previous folder of that name is replaced (moved
    aside first, removed after), so readers see either the old or the new complete bundle."""
    old = final.with_name(f".{final.name}.replaced-{order_id}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
