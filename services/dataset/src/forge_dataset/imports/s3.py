"""The S3 source: the objects under a prefix of a registered S3 connection's bucket, listed and read with
the user's own credentials on the user's endpoint (through the egress guard), each object a file named
by its key relative to the prefix, streamed as its body arrives; a body that breaks off is resumed
with a ranged GET of the same object (`If-Match` its ETag), so a changed object is never stitched."""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import structlog
from botocore.exceptions import BotoCoreError, ClientError
from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_kit.auth import Principal
from forge_kit.errors import Unprocessable
from pydantic import BaseModel, ConfigDict, Field

from forge_dataset.connections import clients
from forge_dataset.connections import service as connections
from forge_dataset.deps import Deps
from forge_dataset.imports.sources import Listing, RemoteFile, Stream
from forge_dataset.tasks.runner import TaskContext

log = structlog.get_logger(__name__)

KINDS = ("s3",)
CHUNK_BYTES = 1024 * 1024
MAX_RESUMES = 20
"""How often one object's download is resumed (a ranged GET, If-Match its ETag) before the attempt fails."""
BROKEN = (BotoCoreError, aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError)
"""What a connection that breaks off mid-body raises through aiobotocore."""
MAX_OBJECTS = 10_000
"""The most objects one import takes (narrow the prefix or `include` for more)."""


class S3Source(BaseModel):
    """The objects under `prefix` in the bucket of an S3 connection (see `POST /connections`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["s3"]
    connection_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    prefix: str = Field(
        default="", max_length=1024, pattern=r"^[^\x00-\x1f]*$", description="Keys under it (`data/2024/`)."
    )
    include: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        description="A glob on the names relative to the prefix (`*.jsonl`, `train/*`).",
    )


async def check(deps: Deps, caller: Principal, source: S3Source) -> None:
    """At request time: the connection is one of the caller's tenant's S3 connections (else 404/422)."""
    await connections.credentials(deps, caller, source.connection_id, KINDS)


def _name(prefix: str, key: str) -> str:
    return key[len(prefix) :].lstrip("/")


def _opener(client: Any, bucket: str, key: str, name: str, listing: Listing) -> RemoteFile:
    @asynccontextmanager
    async def opened() -> AsyncIterator[Stream]:
        response = await _get(client, bucket, key, name)
        etag, total = response.get("ETag"), response.get("ContentLength")

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal response
            received, resumes = 0, 0
            while True:
                body = response["Body"]
                try:
                    while chunk := await body.read(CHUNK_BYTES):
                        received += len(chunk)
                        yield chunk
                    return
                except BROKEN as error:
                    broke = f"{name}: the download broke off after {received} bytes ({error})"
                    if etag is None or resumes >= MAX_RESUMES:
                        raise RuntimeError(broke) from None  # retried from the start
                finally:
                    body.close()
                resumes += 1  # the rest, of the same object only (If-Match its ETag)
                response = await _get(client, bucket, key, name, Range=f"bytes={received}-", IfMatch=etag)
                if not str(response.get("ContentRange", "")).startswith(f"bytes {received}-"):
                    response["Body"].close()
                    raise RuntimeError(f"{broke}; the endpoint did not send the rest")
                log.info("s3 download resumed", file=name, at_byte=received, resumes=resumes)

        yield Stream(chunks(), total)

    return RemoteFile(name=name, open=opened, listing=listing)


async def _get(client: Any, bucket: str, key: str, name: str, **extra: str) -> Any:
    try:
        return await client.get_object(Bucket=bucket, Key=key, **extra)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404"):
            raise Unprocessable(f"{name}: the object {key!r} is gone") from None
        if code in ("PreconditionFailed", "412"):  # changed since the download began: start again
            raise RuntimeError(f"{name}: the object {key!r} changed while it was read") from None
        raise clients.s3_refusal(error, name) or RuntimeError(f"{name}: {error}") from None


async def files(ctx: TaskContext, source: S3Source) -> AsyncIterator[RemoteFile]:
    credentials = await connections.credentials(ctx.deps, ctx.caller, source.connection_id, KINDS)
    bucket = str(credentials.option("bucket"))
    pattern = re.compile(FILE_NAME_PATTERN)
    what = f"connection {credentials.name!r}"
    try:
        async with clients.s3(credentials, ctx.deps.import_allowed_networks) as client:
            keys: list[str] = []
            listed_bytes = 0
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=source.prefix):
                for item in page.get("Contents", []):
                    key, name = item["Key"], _name(source.prefix, item["Key"])
                    if not name or key.endswith("/"):
                        continue  # the prefix itself, a "folder" marker
                    if source.include is not None and not fnmatch.fnmatchcase(name, source.include):
                        continue
                    if not pattern.match(name):
                        raise Unprocessable(
                            f"{key!r} cannot be a file of a dataset version ({name!r} is not a valid file "
                            "name); narrow the import with `include`"
                        )
                    keys.append(key)
                    listed_bytes += int(item.get("Size", 0))
                    if len(keys) > MAX_OBJECTS:
                        raise Unprocessable(f"more than {MAX_OBJECTS} objects under {source.prefix!r}")
            listing = Listing(len(keys), listed_bytes)
            for key in keys:
                yield _opener(client, bucket, key, _name(source.prefix, key), listing)
    except ClientError as error:
        raise clients.s3_refusal(error, what) or RuntimeError(f"{what}: {error}") from None
    except BotoCoreError as error:
        raise clients.Unreachable(f"{what}: the endpoint could not be reached ({error})") from None
