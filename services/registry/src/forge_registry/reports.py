"""Evaluation reports in object storage: the registry keeps each report's JSON in its database (EV-4) and,
when the evaluation did not put it in object storage itself, writes it there so events can point at it."""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.exceptions import ClientError
from forge_kit.objects import s3_client
from forge_kit.settings import ServiceSettings
from forge_kit.stack_env import StackSettings
from pydantic import SecretStr

DEFAULT_BUCKET = "forge-registry-reports"
BUCKET_ENV = "FORGE_REGISTRY_REPORTS_BUCKET"


class ReportStore:
    """Writes evaluation reports to `s3://<bucket>/<tenant>/<project>/<version>/evaluations/<id>.json`."""

    def __init__(self, settings: ServiceSettings, bucket: str | None = None) -> None:
        self.bucket = bucket or os.environ.get(BUCKET_ENV) or DEFAULT_BUCKET
        # The kit's s3_client takes the stack's settings; the service's carry the same S3 fields.
        self._s3 = StackSettings(
            s3_endpoint=settings.s3_endpoint,
            s3_access_key=settings.s3_access_key,
            s3_secret_key=SecretStr(settings.s3_secret_key),
            s3_region=settings.s3_region,
        )

    def key(self, tenant: str, project_id: str, version_id: str, evaluation_id: str) -> str:
        return f"{tenant}/{project_id}/{version_id}/evaluations/{evaluation_id}.json"

    async def put(self, key: str, document: dict[str, Any]) -> str:
        """Store `document` under `key` (overwriting: the same evaluation always writes the same key)."""
        body = json.dumps(document, sort_keys=True, indent=2).encode()
        async with s3_client(self._s3) as s3:
            try:
                await self._put(s3, key, body)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
                    raise
                await self._create_bucket(s3)
                await self._put(s3, key, body)
        return f"s3://{self.bucket}/{key}"

    async def _put(self, s3: Any, key: str, body: bytes) -> None:
        await s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    async def _create_bucket(self, s3: Any) -> None:
        try:
            await s3.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in {
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            }:
                raise
