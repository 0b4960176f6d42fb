"""Use cases of archive uploads: stage an archive and start its `expand` task, and the task's handler,
which adds every member to the draft version as a file of its own (checked like any upload) in one
transaction at the end, so a bad member, a cancel or a crash leaves the version as it was."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, Any, cast

from forge_contracts.activities.dataset import ManifestFile
from forge_contracts.envelope import uuid7
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, Unprocessable
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset import domain, formats
from forge_dataset.archives.domain import Archive, BadArchive, Member
from forge_dataset.deps import Deps
from forge_dataset.events import move_version, now
from forge_dataset.rows import version_row
from forge_dataset.tables import DatasetTask, VersionFile
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.runner import TaskContext, TaskResult

IN_FLIGHT = 8
"""Small members uploaded at once (each at most one part in memory)."""
MAX_MEMBERS = 1_000_000
ACTIVE_TASK_STATES = ("pending", "queued", "running")


def can_upload(state: str) -> bool:
    return state in ("draft", "uploading")


async def stage(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    version_id: str,
    name: str,
    body: AsyncIterable[bytes],
    prefix: str,
) -> tuple[DatasetTask, bool]:
    """Stream an archive to staging (its signature checked) and start the task that expands it into the
    draft version; an identical archive already being expanded into it shares that task."""
    async with deps.db.session() as session:
        found = await version_row(session, caller, dataset_id, version_id)
    if not can_upload(found.state):
        raise Conflict(f"version {version_id!r} is {found.state!r}: files can only be added to a draft")
    scanner = formats.BlobScanner(name, formats.media_kind(name))
    staging_key = domain.staging_prefix(caller.tenant_id, version_id) + "archive-" + uuid7()

    async def scan(part: bytes) -> None:
        scanner.feed(part)

    async def finish() -> None:
        scanner.finish()

    try:
        await deps.store.write_stream(staging_key, body, on_part=scan, on_end=finish)
    except domain.InvalidRecords as error:
        raise Unprocessable(str(error)) from None
    parameters = {
        "archive": name,
        "prefix": prefix,
        "staging_key": staging_key,
        "sha256": scanner.sha256,
        "size_bytes": scanner.size_bytes,
    }
    task, created = await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "expand",
        input_version_id=version_id,
        parameters=parameters,
        request_key=f"expand:{version_id}:{scanner.sha256}:{prefix}",
    )
    if not created:
        await deps.store.delete(staging_key)
    return task, created


async def expanding(deps: Deps, tenant: str, version_id: str) -> DatasetTask | None:
    """An expand task still adding files to the version, if any (publishing waits for it)."""
    async with deps.db.session() as session:
        query = select(DatasetTask).where(
            DatasetTask.tenant == tenant,
            DatasetTask.kind == "expand",
            DatasetTask.input_version_id == version_id,
            col(DatasetTask.state).in_(ACTIVE_TASK_STATES),
        )
        return (await session.exec(query)).first()


async def _download(ctx: TaskContext, key: str, size: int, path: Path) -> None:
    done = 0
    with path.open("wb") as out:
        async with contextlib.aclosing(ctx.deps.store.read(key)) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(out.write, chunk)
                done += len(chunk)
                await ctx.report(
                    0.2 * done / max(size, 1), phase="downloading", bytes_done=done, bytes_total=size
                )


class _Expander:
    def __init__(self, ctx: TaskContext, archive: Archive, members: list[Member], work: Path) -> None:
        self.ctx, self.archive, self.members, self.work = ctx, archive, members, work
        self.deps, self.tenant = ctx.deps, ctx.task.tenant
        self.files: list[tuple[ManifestFile, dict[str, Any] | None]] = []
        self.bytes_total = sum(m.size_bytes for m in members) or 1
        self.bytes_done = 0

    async def progress(self) -> None:
        await self.ctx.report(
            0.2 + 0.75 * self.bytes_done / self.bytes_total,
            phase="expanding",
            files_done=len(self.files),
            files_total=len(self.members),
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
        )

    def _scan(self, member: Member, data: bytes) -> formats.Scanner:
        scanner = formats.scanner_for(member.name, self.work)
        scanner.feed(data)
        scanner.finish()
        return scanner

    def _done(self, scanner: formats.Scanner, key: str) -> None:
        stats = scanner.stats.to_json() if scanner.format else None
        self.files.append((formats.manifest_file(scanner, key), stats))
        self.bytes_done += scanner.size_bytes

    async def run(self) -> None:
        """Every member, in archive order: small ones read here and uploaded `IN_FLIGHT` at a time over
        one client, large ones streamed in parts. The first failure stops the rest and is raised."""
        part = self.deps.store.part_bytes
        await self.deps.store.ensure_bucket()
        try:
            async with self.deps.store.client() as s3, asyncio.TaskGroup() as group:
                slots = asyncio.Semaphore(IN_FLIGHT)
                for member in self.members:
                    if member.size_bytes > part:
                        await self._large(member)
                        continue
                    data = await asyncio.to_thread(self._read_small, member, part)
                    await slots.acquire()
                    group.create_task(self._small(s3, slots, member, data))
        except ExceptionGroup as group:
            first: BaseException = group
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    def _read_small(self, member: Member, limit: int) -> bytes:
        with self.archive.open(member) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise BadArchive(f"the member {member.name!r} is longer than its header says")
        return data

    async def _small(self, s3: Any, slots: asyncio.Semaphore, member: Member, data: bytes) -> None:
        try:
            scanner = await asyncio.to_thread(self._scan, member, data)
            key = domain.blob_key(self.tenant, scanner.sha256)
            await s3.put_object(Bucket=self.deps.store.bucket, Key=key, Body=data)
            self._done(scanner, key)
            await self.progress()
        finally:
            slots.release()

    async def _large(self, member: Member) -> None:
        scanner = formats.scanner_for(member.name, self.work)
        staging = domain.staging_prefix(self.tenant, self.ctx.task.id) + uuid7()
        with self.archive.open(member) as stream:

            async def chunks() -> AsyncIterator[bytes]:
                while chunk := await asyncio.to_thread(_read, stream, 1024 * 1024):
                    yield chunk

            async def scan(part: bytes) -> None:
                await asyncio.to_thread(scanner.feed, part)

            async def finish() -> None:
                scanner.finish()

            await self.deps.store.write_stream(staging, chunks(), on_part=scan, on_end=finish)
        key = domain.blob_key(self.tenant, scanner.sha256)
        try:
            if await self.deps.store.size(key) != scanner.size_bytes:
                await self.deps.store.copy(staging, key, scanner.size_bytes)
        finally:
            await self.deps.store.delete(staging)
        self._done(scanner, key)
        await self.progress()


def _read(stream: IO[bytes], size: int) -> bytes:
    try:
        return stream.read(size)
    except (EOFError, OSError, ValueError) as error:
        raise BadArchive(f"a member is corrupt ({error})") from None


def _limits(deps: Deps) -> dict[str, int]:
    return {
        "max_member_bytes": deps.import_max_file_bytes,
        "max_total_bytes": deps.import_max_file_bytes,
        "max_members": MAX_MEMBERS,
    }


async def run_expand(ctx: TaskContext) -> TaskResult:
    """The `expand` task's handler. The archive stays in staging until the task succeeds here, or ends
    failed or cancelled (the task activities' `end_task` removes it), so a retry finds it."""
    task, params = ctx.task, ctx.task.parameters
    version_id = task.input_version_id or ""
    try:
        with tempfile.TemporaryDirectory(prefix=f"expand-{task.id}-", dir=ctx.deps.work_dir) as work:
            path = Path(work) / "archive"
            await _download(ctx, params["staging_key"], int(params["size_bytes"]), path)
            archive = await asyncio.to_thread(Archive, path, **_limits(ctx.deps))
            try:
                listing = await asyncio.to_thread(archive.listing, params.get("prefix") or "")
                expander = _Expander(ctx, archive, listing.members, Path(work))
                await expander.run()
            finally:
                archive.close()
        await ctx.report(0.97, phase="adding files", force=True)
        await _add_files(ctx, version_id, expander.files, listing.skipped)
    except (BadArchive, domain.InvalidRecords) as error:
        raise Unprocessable(f"{params['archive']}: {error}") from None
    await ctx.deps.store.delete(params["staging_key"])
    return TaskResult(ended=True)


async def _add_files(
    ctx: TaskContext, version_id: str, files: list[tuple[ManifestFile, dict[str, Any] | None]], skipped: int
) -> None:
    task, caller = ctx.task, ctx.caller
    async with ctx.deps.db.transaction() as session:
        found = await version_row(session, caller, task.dataset_id, version_id, lock=True)
        if not can_upload(found.state):
            raise Conflict(f"version {version_id!r} is {found.state!r} now: its files can no longer change")
        if found.state == "draft":
            staging_uri = ctx.deps.store.uri(domain.staging_prefix(task.tenant, version_id))
            await move_version(session, found, "start_upload", caller.actor, staging_uri=staging_uri)
        await _upsert_files(session, version_id, files)
        stats_out = {
            "files": len(files),
            "skipped": skipped,
            "records": sum(f.record_count for f, _ in files),
            "bytes": sum(f.size_bytes for f, _ in files),
        }
        await tasks.succeed(
            ctx.deps,
            task.tenant,
            task.id,
            stats=stats_out,
            result={"archive": task.parameters["archive"], "version_id": version_id},
            session=session,
        )


ROWS_PER_INSERT = 1000


async def _upsert_files(
    session: AsyncSession, version_id: str, files: list[tuple[ManifestFile, dict[str, Any] | None]]
) -> None:
    """The files' rows, replacing those of the same name, a thousand per statement: an archive of a
    hundred thousand members must not hold the event loop (and the task's heartbeat) for one long ORM
    flush."""
    at = now()
    table = cast(Table, VersionFile.__table__)
    connection = await session.connection()  # Core executemany: no ORM objects for 100 000 rows
    for start in range(0, len(files), ROWS_PER_INSERT):
        rows = [
            {
                "version_id": version_id,
                "name": file.name,
                "object_key": file.object_key,
                "sha256": file.sha256,
                "size_bytes": file.size_bytes,
                "record_count": file.record_count,
                "format": file.format,
                "media_type": file.media_type or "application/octet-stream",
                "stats": stats,
                "uploaded_at": at,
            }
            for file, stats in files[start : start + ROWS_PER_INSERT]
        ]
        statement = insert(table)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["version_id", "name"],
                set_={
                    name: statement.excluded[name] for name in rows[0] if name not in ("version_id", "name")
                },
            ),
            rows,
        )
