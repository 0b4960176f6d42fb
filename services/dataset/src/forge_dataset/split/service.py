"""Use cases of splits (DS-4): start one (a `split` dataset task) and run it (the task's handler).

The handler streams the source version from the bucket (twice when stratifying: counting, then
splitting), writes each output to a local file through a scanner (sha256, records, statistics), uploads
the outputs to their content-addressed keys and publishes them as a new version of the dataset with
lineage to the source, in the transaction that ends the task. Memory is one chunk and the outputs'
write buffers, whatever the version's size.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from forge_contracts.activities.dataset import ManifestFile
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, Unprocessable

from forge_dataset import domain, formats, records
from forge_dataset.deps import Deps
from forge_dataset.diff.domain import canonical
from forge_dataset.rows import version_files, version_row
from forge_dataset.schemas import SplitRequest
from forge_dataset.service import READABLE, published_source
from forge_dataset.split.domain import SplitError, SplitPlan, Splitter, StrataCounter
from forge_dataset.tables import DatasetTask, VersionFile
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.outputs import publish_output
from forge_dataset.tasks.runner import TaskContext, TaskResult


def plan_of(request: SplitRequest) -> SplitPlan:
    return SplitPlan(
        seed=request.seed,
        ratios=request.ratios,
        folds=request.folds,
        stratify_by=request.stratify_by,
        group_by=request.group_by,
    )


async def start_split(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, request: SplitRequest
) -> tuple[DatasetTask, bool]:
    """The split task of a readable version (a new one, or an identical request's: the same seed and
    parameters give the same output, so it is shared)."""
    await published_source(deps, caller, dataset_id, version_id, doing="can be split")
    parameters = request.model_dump(mode="json")
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "split",
        input_version_id=version_id,
        parameters=parameters,
        request_key=f"split:{version_id}:{canonical(parameters).decode()}",
    )


async def _stream(
    deps: Deps,
    files: list[VersionFile],
    handle: Callable[[list[bytes]], None],
    after_chunk: Callable[[int], Awaitable[None]],
) -> None:
    """Every record line of `files` through `handle` (in a worker thread, a chunk at a time)."""
    for file in files:
        await records.each_lines(deps.store, file, deps.work_dir, handle, after_chunk)


async def run_split(ctx: TaskContext) -> TaskResult:
    """The `split` task's handler."""
    caller, task = ctx.caller, ctx.task
    request = SplitRequest.model_validate(task.parameters)
    plan = plan_of(request)
    async with ctx.deps.db.session() as session:
        source = await version_row(session, caller, task.dataset_id, task.input_version_id or "")
        if source.state not in READABLE:
            raise Conflict(f"version {source.id!r} is {source.state!r}, not published")
        files = await version_files(session, source.id)
    passes = 2 if plan.needs_counts else 1
    total = max(source.size_bytes * passes, 1)
    read = 0

    def progress(phase: str) -> Callable[[int], Awaitable[None]]:
        async def after(n: int) -> None:
            nonlocal read
            read += n
            await ctx.report(0.95 * read / total, phase=phase, bytes_done=read, bytes_total=total)

        return after

    counts: dict[bytes, int] | None = {b"": source.item_count} if plan.group_by is None else None
    try:
        if plan.needs_counts:
            assert plan.stratify_by is not None
            counter = StrataCounter(plan.stratify_by)
            await _stream(ctx.deps, files, counter.add, progress("counting"))
            counts = dict(counter.counts)
        with tempfile.TemporaryDirectory(prefix=f"split-{task.id}-", dir=ctx.deps.work_dir) as work:
            splitter = Splitter(plan, Path(work), counts)
            try:
                await _stream(ctx.deps, files, splitter.add, progress("splitting"))
            finally:
                await asyncio.to_thread(splitter.close)
            outputs = [await _upload(ctx.deps, task.tenant, o.path, o.scanner) for o in splitter.outputs]
            stats_by_file = {o.name: o.scanner.stats.to_json() for o in splitter.outputs}
    except SplitError as error:
        raise Unprocessable(f"the version cannot be split: {error}") from None
    splits = {f.name.removesuffix(".jsonl"): f.record_count for f in outputs}
    return await publish_output(
        ctx,
        outputs,
        operation="split",
        parent_version_id=source.id,
        stats_by_file=stats_by_file,
        totals={"records_in": splitter.records, **{f"records_{name}": n for name, n in splits.items()}},
        result={"splits": splits},
        splits=splits,
    )


async def _upload(deps: Deps, tenant: str, path: Path, scanner: domain.JsonlScanner) -> ManifestFile:
    key = domain.blob_key(tenant, scanner.sha256)
    if await deps.store.size(key) != scanner.size_bytes:
        await deps.store.put_file(key, path)
    return formats.manifest_file(scanner, key)
