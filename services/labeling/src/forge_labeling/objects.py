"""Object storage for the labeling service: reading a dataset version's files and writing export files
(to the labeling bucket, created on first write)."""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError
from forge_kit.objects import s3_client

from forge_labeling.settings import LabelingSettings


class ObjectStore:
    """Reads from any bucket the service's credentials can read; writes to `labeling_bucket`."""

    def __init__(self, settings: LabelingSettings) -> None:
        self.settings = settings
        self.bucket = settings.labeling_bucket
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    def client(self) -> Any:
        return s3_client(self.settings)

    def uri(self, key: str, bucket: str | None = None) -> str:
        return f"s3://{bucket or self.bucket}/{key}"

    async def read_all(self, bucket: str, key: str) -> bytes:
        async with self.client() as s3:
            response = await s3.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        return data

    async def put(self, key: str, data: bytes) -> None:
        await self._ensure_bucket()
        async with self.client() as s3:
            await s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    async def _ensure_bucket(self) -> None:
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
