"""Object storage (S3 API; MinIO locally): one way to get a client for the stack's endpoint."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aioboto3
from pydantic import SecretStr

from forge_kit.errors import Unprocessable

if TYPE_CHECKING:
    from forge_kit.settings import ServiceSettings
    from forge_kit.stack_env import StackSettings


def s3_client(settings: StackSettings | ServiceSettings, session: aioboto3.Session | None = None) -> Any:
    """An async S3 client context manager (`async with s3_client(settings) as s3:`), from the stack's or
    a service's settings."""
    secret = settings.s3_secret_key
    return (session or aioboto3.Session()).client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=secret.get_secret_value() if isinstance(secret, SecretStr) else secret,
        region_name=settings.s3_region,
    )


DEFAULT_MODEL_AREAS = ("s3://forge-models/tenants/{tenant}/", "s3://forge-training/{tenant}/")
"""Where a tenant's model files may be (`{tenant}` is its id): the models bucket's tenant folder, where
operators and imports put base models and externally trained ones, and the tenant's training outputs.
Every model URI a caller registers must be inside one of its tenant's areas: services read these URIs
with their own credentials, so a URI elsewhere would read another tenant's files (FORGE_MODEL_AREAS
configures them)."""


def check_tenant_area(uri: str, tenant: str, areas: Sequence[str], *, what: str = "uri") -> str:
    """`uri` if it is inside one of `tenant`'s `areas`, a 422 naming the areas otherwise.

    An area is `s3://<bucket>/<key prefix>` with `{tenant}` for the tenant's id, in the bucket (one bucket
    per tenant) or the prefix; its bucket may be a glob (`test-*`). A URI with `.`/`..` or empty segments
    or a backslash is refused whatever its prefix, so no store's reading of `..` can leave the area."""
    allowed = [area.format(tenant=tenant) for area in areas]
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        segments = key.rstrip("/").split("/")
        clean = bool(bucket) and "\\" not in uri and all(part not in ("", ".", "..") for part in segments)
        for area in allowed if clean else ():
            area_bucket, _, prefix = area.removeprefix("s3://").partition("/")
            if fnmatch.fnmatchcase(bucket, area_bucket) and key.startswith(prefix) and len(key) > len(prefix):
                return uri
    raise Unprocessable(
        f"{what}: {uri} is not in one of tenant {tenant}'s model areas ({', '.join(allowed)}); "
        "put the files there first"
    )
