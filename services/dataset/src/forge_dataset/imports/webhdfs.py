"""The WebHDFS source: the files under an HDFS path, read over WebHDFS (Hadoop's REST API on the
NameNode's HTTP port) through the kit's egress guard, as `user` (simple authentication, `user.name`).

At request time the path is stat-ed (GETFILESTATUS): a missing path is a 422. The task lists a folder
recursively (LISTSTATUS), skipping what Hadoop itself treats as hidden (names starting with `_` or `.`,
such as `_SUCCESS` markers), and streams each file with OPEN: the NameNode redirects to a DataNode, and
each redirect is checked by the egress guard like the first address. A file is named by its path below
`path`, and the length HDFS lists is the size it must arrive with. A connection lost mid-file is resumed
where it broke (OPEN's `offset`), a few times, within one attempt of the task.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

import httpx
from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_kit.auth import Principal
from forge_kit.egress import EgressFailed, EgressRefused, check_url, open_stream
from forge_kit.errors import Unprocessable

from forge_dataset.deps import Deps
from forge_dataset.imports.schemas import WebHdfsSource
from forge_dataset.imports.sources import Listing, RemoteFile, Stream
from forge_dataset.tasks.runner import TaskContext

MAX_FILES = 10_000
MAX_LISTING_BYTES = 64 * 1024 * 1024
RESUMES = 3
"""How often one file's download is resumed after its connection broke (then the task's retry)."""
CHUNK_BYTES = 1024 * 1024
_NAME = re.compile(FILE_NAME_PATTERN)


def _url(source: WebHdfsSource, path: str, op: str, **params: str | int) -> str:
    query = urlencode({"op": op, "user.name": source.user, **params})
    return f"{source.url.rstrip('/')}/webhdfs/v1{quote(path, safe='/')}?{query}"


def _refused(source: WebHdfsSource, path: str, error: EgressFailed | EgressRefused) -> NoReturn:
    """A 4xx (not found, no permission) or a refused address is for the user; anything else may pass."""
    if isinstance(error, EgressRefused):
        raise Unprocessable(f"{source.url}: {error}") from None
    status = error.status
    if status == 404:
        raise Unprocessable(f"{path} does not exist in HDFS at {source.url}") from None
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        raise Unprocessable(f"{path}: {error}") from None
    raise RuntimeError(f"{path}: {error}") from None  # retried: the NameNode or DataNode may come back


async def _json(deps: Deps, source: WebHdfsSource, path: str, op: str) -> Any:
    try:
        async with open_stream(_url(source, path, op), allowed_networks=deps.import_allowed_networks) as r:
            body = bytearray()
            async for chunk in r.aiter_bytes(CHUNK_BYTES):
                body += chunk
                if len(body) > MAX_LISTING_BYTES:
                    raise Unprocessable(f"{path}: the listing is larger than {MAX_LISTING_BYTES} bytes")
    except (EgressFailed, EgressRefused) as error:
        _refused(source, path, error)
    try:
        return json.loads(body)
    except ValueError:
        raise Unprocessable(f"{source.url} does not answer as WebHDFS ({op} {path})") from None


def _field(source: WebHdfsSource, data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            raise Unprocessable(f"{source.url} does not answer as WebHDFS (no {key!r})")
        data = data[key]
    return data


async def _status(deps: Deps, source: WebHdfsSource) -> dict[str, Any]:
    status: dict[str, Any] = _field(
        source, await _json(deps, source, source.path, "GETFILESTATUS"), "FileStatus"
    )
    return status


async def check(deps: Deps, _caller: Principal, source: WebHdfsSource) -> None:
    """At request time: an address the egress guard refuses, an unknown host, a missing path are a 422."""
    try:
        await check_url(source.url, deps.import_allowed_networks)
    except (EgressRefused, EgressFailed) as error:
        raise Unprocessable(f"{source.url}: {error}") from None
    try:
        await _status(deps, source)
    except RuntimeError as error:
        raise Unprocessable(f"{source.url} cannot be read: {error}") from None


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


async def _listing(deps: Deps, source: WebHdfsSource) -> list[tuple[str, str, int]]:
    """(HDFS path, name in the version, length) of every file to import, sorted by name."""
    root = await _status(deps, source)
    if root["type"] == "FILE":
        return [(source.path, posixpath.basename(source.path), int(root["length"]))]
    found: list[tuple[str, str, int]] = []
    folders = [source.path]
    while folders:
        folder = folders.pop()
        answer = await _json(deps, source, folder, "LISTSTATUS")
        listed: Sequence[dict[str, Any]] = _field(source, answer, "FileStatuses", "FileStatus")
        for entry in listed:
            path = posixpath.join(folder, entry["pathSuffix"])
            relative = posixpath.relpath(path, source.path)
            if _hidden(relative):
                continue
            if entry["type"] == "DIRECTORY":
                folders.append(path)
            elif entry["type"] == "FILE" and (
                source.include is None or fnmatch.fnmatchcase(relative, source.include)
            ):
                found.append((path, relative, int(entry["length"])))
                if len(found) > MAX_FILES:
                    raise Unprocessable(f"{source.path} holds more than {MAX_FILES} files to import")
    return sorted(found, key=lambda f: f[1])


def _remote(
    deps: Deps, source: WebHdfsSource, path: str, name: str, length: int, listing: Listing
) -> RemoteFile:
    @asynccontextmanager
    async def opened() -> AsyncIterator[Stream]:
        async def chunks() -> AsyncIterator[bytes]:
            received, resumes = 0, 0
            while True:
                params = {"offset": received} if received else {}
                try:
                    url = _url(source, path, "OPEN", **params)
                    async with open_stream(url, allowed_networks=deps.import_allowed_networks) as response:
                        async for chunk in response.aiter_bytes(CHUNK_BYTES):
                            received += len(chunk)
                            yield chunk
                    return
                except (EgressFailed, EgressRefused) as error:
                    _refused(source, path, error)
                except httpx.TransportError as error:
                    if not received or received >= length or resumes >= RESUMES:
                        raise RuntimeError(f"{path}: the download broke off ({error!r})") from None
                    resumes += 1  # the bytes so far are in: ask for the rest

        yield Stream(chunks(), length)

    return RemoteFile(name=name, size_bytes=length, open=opened, listing=listing)


async def files(ctx: TaskContext, source: WebHdfsSource) -> AsyncIterator[RemoteFile]:
    found = await _listing(ctx.deps, source)
    listing = Listing(len(found), sum(length for _, _, length in found))
    for path, name, length in found:
        if not _NAME.match(name):
            raise Unprocessable(f"{path}: {name!r} is not a file name a version can hold")
        yield _remote(ctx.deps, source, path, name, length, listing)
