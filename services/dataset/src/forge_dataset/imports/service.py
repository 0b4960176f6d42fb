"""Use cases of imports: start one (an `import` dataset task) and run it (the task's handler).

Every source (imports.sources) yields its files as byte streams; each is streamed into a multipart
upload while every part is scanned (records, statistics, sha256), checked against the expected size
and sha256, and copied to its content-addressed key. Once every file is in, the version is published
in the transaction that ends the task: a failed or cancelled import leaves no version, and its staging
objects are removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from forge_contracts.activities.dataset import ManifestFile
from forge_contracts.envelope import uuid7
from forge_kit.auth import Principal
from forge_kit.errors import Unprocessable

from forge_dataset import domain, formats
from forge_dataset.deps import Deps
from forge_dataset.diff.domain import canonical
from forge_dataset.imports import link, s3, sql, webhdfs
from forge_dataset.imports.schemas import ImportRequest
from forge_dataset.imports.sources import Listing, RemoteFile
from forge_dataset.media.references import check_references, media_fields
from forge_dataset.rows import dataset_row
from forge_dataset.service import merged_documents
from forge_dataset.statistics.domain import schema_violations
from forge_dataset.tables import DatasetTask, VersionFile
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.outputs import publish_output
from forge_dataset.tasks.runner import TaskContext, TaskResult


@dataclass(frozen=True)
class SourceKind:
    check: Callable[[Deps, Principal, Any], Awaitable[None]]
    files: Callable[[TaskContext, Any], AsyncIterator[RemoteFile]]
    version_source: str | None = None
    """The version's `source` (DatasetVersionCreated.source) when it is not the request's `type`."""


async def _check_link(deps: Deps, _caller: Principal, source: Any) -> None:
    await link.check(deps, source)


SOURCES: dict[str, SourceKind] = {
    "link": SourceKind(check=_check_link, files=link.files),
    "webhdfs": SourceKind(check=webhdfs.check, files=webhdfs.files, version_source="hdfs"),
    "s3": SourceKind(check=s3.check, files=s3.files),
    "sql": SourceKind(check=sql.check, files=sql.files, version_source="database"),
}
"""Each source type's module, by the `type` of its request."""


async def start_import(
    deps: Deps, caller: Principal, dataset_id: str, request: ImportRequest
) -> tuple[DatasetTask, bool]:
    """The import task (identical requests share it while it runs or once it succeeded), after the
    source's own checks (an address the egress guard refuses, a connection that is not the caller's)."""
    await SOURCES[request.source.type].check(deps, caller, request.source)
    parameters = request.model_dump(mode="json")
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "import",
        input_version_id=None,
        parameters=parameters,
        request_key=f"import:{dataset_id}:{canonical(parameters).decode()}",
    )


class Progress:
    """Progress of one task's downloads, in bytes and files: by bytes once the source listed every
    file's size, by files (and the current file's bytes) otherwise."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.files: int | None = None
        self.bytes_total: int | None = None
        self.done_files, self.bytes_done, self.file_bytes = 0, 0, 0

    def listed(self, listing: Listing | None) -> None:
        if listing is not None:
            self.files, self.bytes_total = listing.files, listing.bytes

    def file_done(self) -> None:
        self.done_files, self.file_bytes = self.done_files + 1, 0

    async def advance(self, n: int, total: int | None) -> None:
        """`n` more bytes of the current file, of `total` when its size is known."""
        self.bytes_done += n
        self.file_bytes += n
        if self.bytes_total:
            overall = min(self.bytes_done / self.bytes_total, 1.0)
        else:
            share = min((self.file_bytes / total) if total else 0.0, 1.0)
            overall = (self.done_files + share) / self.files if self.files else 0.0
        await self.ctx.report(
            0.95 * overall,
            phase="downloading",
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            files_done=self.done_files,
            files_total=self.files,
        )


async def ingest(
    ctx: TaskContext, remote: RemoteFile, progress: Progress
) -> tuple[ManifestFile, dict[str, Any]]:
    """Stream one source file into the dataset bucket: scanned part by part, checked, content-addressed."""
    deps, tenant = ctx.deps, ctx.task.tenant
    scanner = formats.scanner_for(remote.name, deps.work_dir)
    staging = domain.staging_prefix(tenant, ctx.task.id) + uuid7()
    limit = deps.import_max_file_bytes
    try:
        async with remote.open() as stream:
            total = stream.total_bytes
            if (total or 0) > limit:
                raise Unprocessable(f"{remote.name}: {total} bytes is more than {limit}")
            received = 0

            async def body() -> AsyncIterator[bytes]:
                nonlocal received
                async for chunk in stream.chunks:
                    received += len(chunk)
                    if received > limit:
                        raise Unprocessable(f"{remote.name}: larger than {limit} bytes")
                    yield chunk
                    await progress.advance(len(chunk), total or remote.size_bytes)

            async def scan(part: bytes) -> None:
                await asyncio.to_thread(scanner.feed, part)

            async def finish() -> None:
                scanner.finish()
                if remote.size_bytes is not None and scanner.size_bytes != remote.size_bytes:
                    raise Unprocessable(
                        f"{remote.name}: {scanner.size_bytes} bytes arrived, not {remote.size_bytes}"
                    )
                if remote.sha256 is not None and scanner.sha256 != remote.sha256:
                    raise Unprocessable(f"{remote.name}: the sha256 is {scanner.sha256}, not {remote.sha256}")

            await deps.store.write_stream(staging, body(), on_part=scan, on_end=finish)
    except domain.InvalidRecords as error:
        raise Unprocessable(str(error)) from None
    key = domain.blob_key(tenant, scanner.sha256)
    try:
        if await deps.store.size(key) != scanner.size_bytes:
            await deps.store.copy(staging, key, scanner.size_bytes)
    finally:
        await deps.store.delete(staging)
    progress.file_done()
    return formats.manifest_file(scanner, key), scanner.stats.to_json()


async def run_import(ctx: TaskContext) -> TaskResult:
    """The `import` task's handler."""
    task, caller = ctx.task, ctx.caller
    request = ImportRequest.model_validate(task.parameters)
    progress = Progress(ctx)
    fetched: list[tuple[ManifestFile, dict[str, Any]]] = []
    names: set[str] = set()
    async for remote in SOURCES[request.source.type].files(ctx, request.source):
        if remote.name in names:
            raise Unprocessable(f"two files would be named {remote.name!r}")
        names.add(remote.name)
        progress.listed(remote.listing)
        fetched.append(await ingest(ctx, remote, progress))
    if not fetched:
        raise Unprocessable("the source holds no files to import")
    outputs = [f for f, _ in fetched]
    async with ctx.deps.db.session() as session:
        hint = (await dataset_row(session, caller, task.dataset_id)).schema_hint
    if hint and (problems := schema_violations(hint, merged_documents(s for _, s in fetched))):
        raise Unprocessable("the records do not match the schema hint: " + "; ".join(problems))
    if fields := media_fields(hint):
        as_rows = [VersionFile(version_id=task.id, **f.model_dump(exclude_none=True)) for f in outputs]
        if problems := await check_references(ctx.deps.store, as_rows, fields, ctx.deps.work_dir):
            raise Unprocessable(
                "the records name media files the import did not bring: " + "; ".join(problems)
            )
    return await publish_output(
        ctx,
        outputs,
        operation="import",
        parent_version_id=None,
        stats_by_file={f.name: s for f, s in fetched},
        totals={
            "files": len(outputs),
            "records": sum(f.record_count for f in outputs),
            "bytes": sum(f.size_bytes for f in outputs),
        },
        result={"source": request.source.type},
        source=SOURCES[request.source.type].version_source or request.source.type,
    )
