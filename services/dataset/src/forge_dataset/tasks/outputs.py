"""How a task that makes a version (split, import, convert) ends: its files published as a new version of
the task's dataset in the transaction that marks the task succeeded, so a task that fails or is cancelled
before leaves no version behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from forge_contracts.activities.dataset import ManifestFile

from forge_dataset.rows import dataset_row
from forge_dataset.service import create_published_version, store_manifest
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.runner import TaskContext, TaskResult


async def publish_output(
    ctx: TaskContext,
    outputs: list[ManifestFile],
    *,
    operation: str,
    parent_version_id: str | None,
    stats_by_file: dict[str, dict[str, Any]],
    totals: dict[str, int],
    result: dict[str, Any],
    splits: dict[str, int] | None = None,
    source: str = "derived",
    also: Callable[[Any], Awaitable[None]] | None = None,
) -> TaskResult:
    """Write the manifest of `outputs`, then publish them (lineage: `parent_version_id`, `operation`, the
    task's parameters) and end the task with `totals` and `result`, in one transaction; `also` adds its
    own rows to that transaction (given the session)."""
    task, caller = ctx.task, ctx.caller
    await ctx.report(0.97, phase="publishing", force=True)
    digest = await store_manifest(ctx.deps.store, task.tenant, outputs)
    async with ctx.deps.db.transaction() as session:
        owner = await dataset_row(session, caller, task.dataset_id, lock=True)
        output = await create_published_version(
            session,
            ctx.deps.store,
            owner,
            outputs,
            digest,
            caller.actor,
            parent_version_id=parent_version_id,
            operation=operation,
            parameters=task.parameters,
            splits=splits,
            stats=stats_by_file,
            source=source,
        )
        if also is not None:
            await also(session)
        await tasks.succeed(
            ctx.deps,
            task.tenant,
            task.id,
            stats=totals,
            result=result,
            output_version_id=output.id,
            session=session,
        )
    return TaskResult(ended=True)
