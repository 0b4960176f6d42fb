"""The link source: files fetched over HTTP(S) through the kit's egress guard (public addresses only,
unless an administrator allowed a network; redirects checked one by one), with their content type and
announced size checked before the body is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from forge_kit.egress import EgressFailed, EgressRefused, check_url, open_stream
from forge_kit.errors import Unprocessable

from forge_dataset.deps import Deps
from forge_dataset.imports.schemas import LinkFile, LinkSource
from forge_dataset.imports.sources import RemoteFile, Stream
from forge_dataset.tasks.runner import TaskContext

CONTENT_TYPES = frozenset(
    {
        "application/json",
        "application/jsonl",
        "application/x-jsonlines",
        "application/x-ndjson",
        "application/jsonlines",
        "application/octet-stream",
        "text/plain",
        "binary/octet-stream",
    }
)
"""What a JSONL file may be served as (an HTML page, a login form, is not a dataset)."""


async def check(deps: Deps, source: LinkSource) -> None:
    """At request time: URLs the egress guard refuses, or whose host does not resolve, are a 422."""
    for file in source.files:
        try:
            await check_url(file.url, deps.import_allowed_networks)
        except (EgressRefused, EgressFailed) as error:
            raise Unprocessable(f"{file.name}: {error}") from None


def _remote(deps: Deps, file: LinkFile) -> RemoteFile:
    @asynccontextmanager
    async def opened() -> AsyncIterator[Stream]:
        try:
            async with open_stream(file.url, allowed_networks=deps.import_allowed_networks) as response:
                kind = response.headers.get("content-type", "application/octet-stream")
                kind = kind.split(";")[0].strip().lower()
                if kind not in CONTENT_TYPES:
                    raise Unprocessable(f"{file.name}: {file.url} is served as {kind!r}, not as JSONL")
                announced = response.headers.get("content-length")
                total = int(announced) if announced and announced.isdigit() else None
                if total is not None and file.size_bytes is not None and total != file.size_bytes:
                    raise Unprocessable(
                        f"{file.name}: the server announces {total} bytes, not {file.size_bytes}"
                    )
                yield Stream(response.aiter_bytes(1024 * 1024), total)
        except EgressRefused as error:
            raise Unprocessable(f"{file.name}: {error}") from None
        except EgressFailed as error:
            if error.status is not None and 400 <= error.status < 500 and error.status not in (408, 429):
                raise Unprocessable(f"{file.name}: {error}") from None
            raise RuntimeError(f"{file.name}: {error}") from None  # retried: the server may come back

    return RemoteFile(name=file.name, size_bytes=file.size_bytes, sha256=file.sha256, open=opened)


async def files(ctx: TaskContext, source: LinkSource) -> AsyncIterator[RemoteFile]:
    for file in source.files:
        yield _remote(ctx.deps, file)
