"""Use cases of version diffs: start one (a `diff` dataset task), run it (the task's handler), read it.

The file-level diff comes from the versions' file lists (names and sha256) at once; the row-level diff
streams both versions' records from the bucket through `diff.domain.Differ` (spilling to local disk),
then uploads the added, removed and changed records as JSONL objects under
`tenants/<tenant>/diffs/<task>/`, which the changes route pages through. Versions are immutable, so an
identical request (same versions and key) returns the diff already made or running.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from forge_kit.auth import Principal
from forge_kit.errors import Conflict, NotFound, Unprocessable
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset import records
from forge_dataset.deps import Deps
from forge_dataset.diff import domain
from forge_dataset.diff.schemas import Change, DiffRequest, FileChange
from forge_dataset.rows import version_files, version_row
from forge_dataset.tables import DatasetTask, DatasetVersion, VersionFile
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.runner import TaskContext, TaskResult

READABLE = ("published", "deprecated")
FEED_SHARE = 0.8
"""Of the progress bar: reading both versions (the rest: comparing partitions, uploading)."""


def changes_key(tenant: str, task_id: str, change: str) -> str:
    return f"tenants/{tenant}/diffs/{task_id}/{change}.jsonl"


async def _readable(
    session: AsyncSession, caller: Principal, dataset_id: str, version_id: str
) -> DatasetVersion:
    found = await version_row(session, caller, dataset_id, version_id)
    if found.state not in READABLE:
        raise Conflict(f"only published versions can be diffed; version {version_id!r} is {found.state!r}")
    return found


async def start_diff(
    deps: Deps, caller: Principal, dataset_id: str, body: DiffRequest
) -> tuple[DatasetTask, bool]:
    """The diff task of two readable versions of the dataset (a new one, or an identical request's)."""
    async with deps.db.session() as session:
        await _readable(session, caller, dataset_id, body.base_version_id)
        await _readable(session, caller, dataset_id, body.version_id)
    parameters = body.model_dump(mode="json")
    key = f"diff:{body.base_version_id}:{body.version_id}:{body.key or ''}"
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "diff",
        input_version_id=body.version_id,
        parameters=parameters,
        request_key=key,
    )


def file_changes(base: list[VersionFile], new: list[VersionFile]) -> list[FileChange]:
    """The file-level diff: every file name of either version and what happened to it."""
    before = {f.name: f for f in base}
    after = {f.name: f for f in new}
    out = []
    for name in sorted(before.keys() | after.keys()):
        old, now = before.get(name), after.get(name)
        if old is None:
            change = "added"
        elif now is None:
            change = "removed"
        else:
            change = "unchanged" if old.sha256 == now.sha256 else "changed"
        out.append(
            FileChange(
                name=name,
                change=change,  # type: ignore[arg-type]
                base_sha256=old.sha256 if old else None,
                sha256=now.sha256 if now else None,
                base_size_bytes=old.size_bytes if old else None,
                size_bytes=now.size_bytes if now else None,
            )
        )
    return out


async def run_diff(ctx: TaskContext) -> TaskResult:
    """The `diff` task's handler: stream both versions into partitions, compare them, upload the changes."""
    caller, task = ctx.caller, ctx.task
    request = DiffRequest.model_validate(task.parameters)
    async with ctx.deps.db.session() as session:
        base = await _readable(session, caller, task.dataset_id, request.base_version_id)
        new = await _readable(session, caller, task.dataset_id, request.version_id)
        base_files, new_files = await version_files(session, base.id), await version_files(session, new.id)
    total_bytes = base.size_bytes + new.size_bytes
    partitions = domain.partitions_for(total_bytes, base.item_count + new.item_count)
    read = 0
    with tempfile.TemporaryDirectory(prefix=f"diff-{task.id}-", dir=ctx.deps.work_dir) as spill:
        differ = domain.Differ(Path(spill), partitions, request.key)
        try:
            for side, files in ((differ.base, base_files), (differ.version, new_files)):
                for file in files:
                    side.start_file(file.name)
                    reading = records.jsonl_chunks(ctx.deps.store, file, ctx.deps.work_dir)
                    async with contextlib.aclosing(reading) as chunks:
                        async for chunk in chunks:
                            await asyncio.to_thread(side.feed, chunk)
                            read += len(chunk)
                            await ctx.report(
                                FEED_SHARE * read / max(total_bytes, 1),
                                phase="reading",
                                bytes_done=read,
                                bytes_total=total_bytes,
                                records_done=differ.base.records + differ.version.records,
                                records_total=base.item_count + new.item_count,
                            )
                    await asyncio.to_thread(side.end_file)
            differ.end_feeding()
            for partition in range(partitions):
                await asyncio.to_thread(differ.compare, partition)
                await ctx.report(
                    FEED_SHARE + (1 - FEED_SHARE) * 0.9 * (partition + 1) / partitions,
                    phase="comparing",
                    partitions_done=partition + 1,
                    partitions_total=partitions,
                )
        except domain.DiffError as error:
            raise Unprocessable(str(error)) from None
        finally:
            differ.close()
        await ctx.report(FEED_SHARE + (1 - FEED_SHARE) * 0.9, phase="uploading", force=True)
        for change in domain.CHANGES:
            await ctx.deps.store.put_file(changes_key(task.tenant, task.id, change), differ.output(change))
    counts = dict(differ.counts)
    summary = {**counts, "base_records": differ.base.records, "records": differ.version.records}
    result: dict[str, Any] = {
        "summary": summary,
        "files": [f.model_dump() for f in file_changes(base_files, new_files)],
        "partitions": partitions,
    }
    return TaskResult(stats=summary, result=result)


async def diff_task(
    deps: Deps, caller: Principal, dataset_id: str, task_id: str
) -> tuple[DatasetTask, list[FileChange]]:
    """A diff task and its file-level diff (known at once from the versions' file lists)."""
    async with deps.db.session() as session:
        found = await tasks.task_row(session, caller, dataset_id, task_id)
        if found.kind != "diff":
            raise NotFound(f"task {task_id!r} is a {found.kind} task, not a diff")
        request = DiffRequest.model_validate(found.parameters)
        base_files = await version_files(session, request.base_version_id)
        new_files = await version_files(session, request.version_id)
    return found, file_changes(base_files, new_files)


async def changes(
    deps: Deps, caller: Principal, dataset_id: str, task_id: str, change: Change, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """One page of the diff's `change` records (in partition order, stable for the diff), and their total."""
    found, _ = await diff_task(deps, caller, dataset_id, task_id)
    if found.state != "succeeded":
        raise Conflict(f"the diff is {found.state}; its records can be read once it succeeded")
    total = int(found.result["summary"][change])
    page: list[dict[str, Any]] = []
    if offset >= total:
        return total, page
    seen, pending = 0, b""
    async with contextlib.aclosing(deps.store.read(changes_key(found.tenant, found.id, change))) as chunks:
        async for chunk in chunks:
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if seen >= offset:
                    page.append(domain.loads(line))
                    if len(page) >= limit:
                        return total, page
                seen += 1
    return total, page
