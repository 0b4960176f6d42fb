"""Object storage (S3 API; MinIO locally): one way to get a client for the stack's endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aioboto3
from pydantic import SecretStr

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
