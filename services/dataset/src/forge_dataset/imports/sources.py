"""What every import source gives the import task: its files, each opened as a stream of bytes.

A source module (link, s3, sql, webhdfs ...) provides `check(deps, caller, source)`, run when the import
is requested (a 422 there means no task), and `files(ctx, source)`, an async iterator of `RemoteFile`s
the task then streams, scans, checks and stores one at a time (imports.service.ingest). A source raises
`Unprocessable` for what the user must fix (wrong credentials, a bad query, a missing path: the task
fails at once with that reason) and any other error for what may pass (retried).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass


@dataclass
class Stream:
    chunks: AsyncIterator[bytes]
    total_bytes: int | None = None
    """The size the source announces, when it does (for progress and the size check)."""


@dataclass(frozen=True)
class Listing:
    """What a source that lists before it downloads found in all: the progress's denominator."""

    files: int
    bytes: int | None = None
    """Their sizes added up, when the listing gives every size."""


@dataclass
class RemoteFile:
    name: str
    """Its file name in the version."""
    open: Callable[[], AbstractAsyncContextManager[Stream]]
    size_bytes: int | None = None
    """The size the user expects: checked after the download when given."""
    sha256: str | None = None
    """The sha256 the user expects: checked after the download when given."""
    listing: Listing | None = None
    """Every file of the import, when the source listed them first (S3, WebHDFS, SQL shards, links)."""
