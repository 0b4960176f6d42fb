"""Object storage of training and evaluation runs: inputs (models, dataset and test files) are downloaded
into a run's work directory, outputs (checkpoints, adapter, merged model; evaluation records and report)
uploaded under the job's prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aioboto3
from botocore.exceptions import ClientError

from forge_training.domain import ObjectLocation, as_prefix
from forge_training.settings import TrainingSettings

_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


class MissingObject(LookupError):
    """An input the job names is not in object storage."""


class ObjectStore:
    """The S3 API. The kit's `s3_client` takes the stack's settings (with a secret key object), not a
    service's, so the client is built here from ServiceSettings' plain fields."""

    def __init__(self, settings: TrainingSettings) -> None:
        self.bucket = settings.training_bucket
        self._settings = settings
        self._session = aioboto3.Session()
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

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
        """Create the training bucket unless it exists (checked once per process)."""
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

    async def download_file(self, source: ObjectLocation, target: Path) -> None:
        """One object to `target`; MissingObject when it (or its bucket) does not exist."""
        target.parent.mkdir(parents=True, exist_ok=True)
        async with self.client() as s3:
            try:
                response = await s3.get_object(Bucket=source.bucket, Key=source.key)
            except ClientError as error:
                if error.response["Error"]["Code"] in _MISSING:
                    raise MissingObject(f"{source.uri} does not exist") from None
                raise
            with target.open("wb") as out:
                async for chunk in response["Body"].iter_chunks(1024 * 1024):
                    await asyncio.to_thread(out.write, chunk)

    async def download_prefix(self, source: ObjectLocation, target: Path) -> int:
        """Every object under a prefix into `target` (keeping relative paths); MissingObject when none."""
        prefix = as_prefix(source.key)
        keys: list[str] = []
        async with self.client() as s3:
            try:
                paginator = s3.get_paginator("list_objects_v2")
                async for page in paginator.paginate(Bucket=source.bucket, Prefix=prefix):
                    keys.extend(item["Key"] for item in page.get("Contents", []))
            except ClientError as error:
                if error.response["Error"]["Code"] in _MISSING:
                    raise MissingObject(f"bucket {source.bucket} does not exist") from None
                raise
        files = [key for key in keys if not key.endswith("/")]
        if not files:
            raise MissingObject(f"nothing under s3://{source.bucket}/{prefix}")
        for key in files:
            await self.download_file(ObjectLocation(source.bucket, key), target / key[len(prefix) :])
        return len(files)

    async def upload_file(self, source: Path, target: ObjectLocation) -> None:
        """One local file to the key `target`."""
        async with self.client() as s3:
            await s3.upload_file(str(source), target.bucket, target.key)

    async def upload_dir(self, source: Path, target: ObjectLocation) -> int:
        """Every file under `source` to the prefix `target` (relative paths kept); returns the count."""
        prefix = as_prefix(target.key)
        files = await asyncio.to_thread(_files_under, source)
        async with self.client() as s3:
            for path in files:
                key = prefix + path.relative_to(source).as_posix()
                await s3.upload_file(str(path), target.bucket, key)
        return len(files)


def _files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())
