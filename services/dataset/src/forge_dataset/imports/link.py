"""The link source: files fetched over HTTP(S) through the kit's egress guard (public addresses only,
unless an administrator allowed a network; redirects checked one by one), with their content type and
announced size checked before the body is read. A download that breaks off is resumed where it stopped
with a `Range` request, guarded by `If-Range` so a file that changed on the server is never stitched
together from two versions (the server then sends it whole, and the import fails to be retried)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import structlog
from forge_kit.egress import EgressFailed, EgressRefused, check_url, open_stream
from forge_kit.errors import Unprocessable

from forge_dataset import formats
from forge_dataset.deps import Deps
from forge_dataset.imports.schemas import LinkFile, LinkSource
from forge_dataset.imports.sources import Listing, RemoteFile, Stream
from forge_dataset.tasks.runner import TaskContext

log = structlog.get_logger(__name__)

GENERIC = frozenset({"application/octet-stream", "binary/octet-stream"})
"""What any file may be served as."""
RECORD_TYPES = {
    "jsonl": frozenset(
        {
            "application/json",
            "application/jsonl",
            "application/x-jsonlines",
            "application/x-ndjson",
            "application/jsonlines",
            "text/plain",
        }
    ),
    "csv": frozenset(
        {
            "text/csv",
            "application/csv",
            "text/comma-separated-values",
            "application/vnd.ms-excel",
            "text/plain",
        }
    ),
    "parquet": frozenset({"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"}),
}
ARCHIVE_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip-compressed",
        "application/x-tar",
        "application/gzip",
        "application/x-gzip",
        "application/x-compressed-tar",
        "application/x-gtar",
    }
)
MAX_RESUMES = 20
"""How often one download is resumed before the import fails (and is retried from the start)."""


def expected_kind(name: str) -> str:
    """What a file named `name` should be served as, in words (for the error)."""
    record = formats.record_format(name)
    if record is not None:
        return {"jsonl": "JSONL", "csv": "CSV", "parquet": "Parquet"}[record]
    return formats.media_kind(name).media_type


def served_as_expected(name: str, content_type: str) -> bool:
    """Whether a response's content type fits the file's kind: an HTML page (a login form, an error
    page) saved as `train.jsonl` or `cat.png` is not the file asked for."""
    if content_type in GENERIC:
        return True
    record = formats.record_format(name)
    if record is not None:
        return content_type in RECORD_TYPES[record]
    media = formats.media_kind(name)
    if media.media_type in ARCHIVE_TYPES:
        return content_type in ARCHIVE_TYPES
    if media.modality in ("image", "audio", "video"):
        return content_type == media.media_type or content_type.startswith(media.modality + "/")
    if media.modality == "text":
        return content_type in (media.media_type, "text/plain")
    return content_type == media.media_type


async def check(deps: Deps, source: LinkSource) -> None:
    """At request time: URLs the egress guard refuses, or whose host does not resolve, are a 422."""
    for file in source.files:
        try:
            await check_url(file.url, deps.import_allowed_networks)
        except (EgressRefused, EgressFailed) as error:
            raise Unprocessable(f"{file.name}: {error}") from None


def _validator(response: httpx.Response) -> str | None:
    """What `If-Range` may name to resume this response: a strong ETag, or Last-Modified; None when the
    server does not take byte ranges, or encodes the body (ranges would count the encoded bytes)."""
    if response.headers.get("accept-ranges", "").strip().lower() != "bytes":
        return None
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return None
    etag: str | None = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    modified: str | None = response.headers.get("last-modified")
    return modified


def _resumed_at(response: httpx.Response) -> int | None:
    """The first byte of a 206 answer (`Content-Range: bytes <first>-<last>/<size>`), else None."""
    if response.status_code != 206:
        return None
    unit, _, rest = response.headers.get("content-range", "").partition(" ")
    first = rest.split("-", 1)[0]
    return int(first) if unit.lower() == "bytes" and first.isdigit() else None


def _remote(deps: Deps, file: LinkFile, listing: Listing) -> RemoteFile:
    allowed = deps.import_allowed_networks

    @asynccontextmanager
    async def opened() -> AsyncIterator[Stream]:
        try:
            async with AsyncExitStack() as responses:
                response = await responses.enter_async_context(
                    open_stream(file.url, allowed_networks=allowed)
                )
                kind = response.headers.get("content-type", "application/octet-stream")
                kind = kind.split(";")[0].strip().lower()
                if not served_as_expected(file.name, kind):
                    raise Unprocessable(
                        f"{file.name}: {file.url} is served as {kind!r}, not as {expected_kind(file.name)}"
                    )
                announced = response.headers.get("content-length")
                total = int(announced) if announced and announced.isdigit() else None
                if total is not None and file.size_bytes is not None and total != file.size_bytes:
                    raise Unprocessable(
                        f"{file.name}: the server announces {total} bytes, not {file.size_bytes}"
                    )
                validator = _validator(response)

                async def chunks() -> AsyncIterator[bytes]:
                    nonlocal response
                    received, resumes = 0, 0
                    while True:
                        try:
                            async for chunk in response.aiter_bytes():  # as it comes: none held back
                                received += len(chunk)
                                yield chunk
                            return
                        except httpx.TransportError as error:
                            broke = f"{file.name}: the download broke off after {received} bytes ({error})"
                            if validator is None or resumes >= MAX_RESUMES:
                                raise RuntimeError(broke) from None  # retried from the start
                        resumes += 1
                        response = await responses.enter_async_context(
                            open_stream(
                                file.url,
                                allowed_networks=allowed,
                                headers={"range": f"bytes={received}-", "if-range": validator},
                            )
                        )
                        if _resumed_at(response) != received:  # changed on the server, or no ranges now
                            raise RuntimeError(f"{broke}; it could not be resumed, the server sent it anew")
                        log.info("link download resumed", file=file.name, at_byte=received, resumes=resumes)

                yield Stream(chunks(), total)
        except EgressRefused as error:
            raise Unprocessable(f"{file.name}: {error}") from None
        except EgressFailed as error:
            if error.status is not None and 400 <= error.status < 500 and error.status not in (408, 429):
                raise Unprocessable(f"{file.name}: {error}") from None
            raise RuntimeError(f"{file.name}: {error}") from None  # retried: the server may come back

    return RemoteFile(
        name=file.name, size_bytes=file.size_bytes, sha256=file.sha256, open=opened, listing=listing
    )


async def files(ctx: TaskContext, source: LinkSource) -> AsyncIterator[RemoteFile]:
    sizes = [file.size_bytes for file in source.files]
    listing = Listing(len(sizes), None if None in sizes else sum(s or 0 for s in sizes))
    for file in source.files:
        yield _remote(ctx.deps, file, listing)
