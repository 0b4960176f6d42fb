"""Use cases of dataset tasks: create one (and start its workflow), read and list them, report progress,
end them, and cancel them. Every state change and its event go in one transaction through the outbox.

A task is `pending -> queued` in the transaction that creates it, `running` when its activity picks it
up (again on each attempt: `attempt` counts them), then `succeeded`, `failed` or `cancelled`. Identical
requests (a `request_key`: same kind, same inputs) share one task while it is active or succeeded; once
it failed or was cancelled the key is released, so asking again starts a new task.
"""

from __future__ import annotations

from typing import Any

from forge_contracts.activities.dataset import (
    PROCESS_WORKFLOW,
    TASK_WORKFLOW,
    ScheduledTaskRef,
    TaskRef,
    TaskScheduling,
    task_workflow_id,
)
from forge_contracts.activities.scheduler import WorkerResources
from forge_contracts.envelope import uuid7
from forge_contracts.events.dataset import DatasetTaskCreated
from forge_contracts.features import TransformerSpec, models_read
from forge_contracts.processing import Pipeline
from forge_contracts.registered import RegisteredModel
from forge_kit.auth import Principal
from forge_kit.errors import NotFound, Unavailable
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from forge_dataset.deps import Deps
from forge_dataset.events import TASK, emit, move_task, now
from forge_dataset.rows import dataset_row
from forge_dataset.tables import DatasetTask, FeatureTransformer

ACTIVE = ("pending", "queued", "running")


async def _by_key(session: AsyncSession, tenant: str, key: str) -> DatasetTask | None:
    query = select(DatasetTask).where(DatasetTask.tenant == tenant, DatasetTask.request_key == key)
    return (await session.exec(query)).first()


async def create_task(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    kind: str,
    *,
    input_version_id: str | None,
    parameters: dict[str, Any],
    request_key: str | None = None,
) -> tuple[DatasetTask, bool]:
    """A queued task of `kind` and its running workflow; `(task, False)` when an identical request's
    task (same `request_key`) is active or succeeded, which is then returned instead."""
    created = DatasetTask(
        id=uuid7(),
        tenant=caller.tenant_id,
        dataset_id=dataset_id,
        kind=kind,
        input_version_id=input_version_id,
        parameters=parameters,
        request_key=request_key,
        created_by=caller.actor,
    )
    try:
        async with deps.db.transaction() as session:
            await dataset_row(session, caller, dataset_id)
            if request_key is not None and (done := await _by_key(session, caller.tenant_id, request_key)):
                found, fresh = done, False
            else:
                session.add(created)
                await emit(
                    session,
                    created,
                    DatasetTaskCreated.event_type,
                    tenant_id=caller.tenant_id,
                    occurred_at=now(),
                    actor=caller.actor,
                    task_id=created.id,
                    dataset_id=dataset_id,
                    kind=kind,
                    input_version_id=input_version_id,
                    parameters=parameters,
                )
                await move_task(session, created, "enqueue", caller.actor)
                found, fresh = created, True
    except IntegrityError:  # a concurrent identical request created it first
        async with deps.db.session() as session:
            done = await _by_key(session, caller.tenant_id, request_key or "")
        if done is None:
            raise
        found, fresh = done, False
    if found.state in ("queued", "running"):
        await _start_workflow(deps, found)
    return found, fresh


async def _start_workflow(deps: Deps, found: DatasetTask) -> None:
    """Start the task's workflow (already started: nothing to do). If the engine cannot be reached the
    task fails, so no task waits `queued` for a workflow that never comes."""
    workflow, argument = await _workflow(deps, found)
    try:
        await deps.temporal.start_workflow(
            workflow, argument, id=task_workflow_id(found.id), task_queue=deps.task_queue
        )
    except WorkflowAlreadyStartedError:
        return
    except (RPCError, RuntimeError, Unavailable) as error:
        await end_task(deps, found.tenant, found.id, "failed", f"the task could not be started: {error}")
        raise Unavailable(f"the workflow engine could not start the task: {error}") from error


SCHEDULED = ("process", "features")
"""Kinds that run on Ray in the data runtime, under the scheduler's quota (their parameters name the
project and the resources); every other kind runs on the dataset worker."""


async def registered_models(deps: Deps, found: DatasetTask) -> list[RegisteredModel]:
    """The registry's models a scheduled task names (its pipeline's, or its transformer's)."""
    if found.kind == "process":
        return Pipeline.model_validate({"ops": found.parameters["ops"]}).models
    spec = found.parameters.get("fit")
    if spec is None and found.parameters.get("transformer_id"):
        async with deps.db.session() as session:
            fitted = await session.get(FeatureTransformer, found.parameters["transformer_id"])
        spec = fitted.spec if fitted is not None and fitted.tenant == found.tenant else None
    return models_read(TransformerSpec.model_validate(spec)) if spec else []


async def _workflow(deps: Deps, found: DatasetTask) -> tuple[str, TaskRef]:
    if found.kind not in SCHEDULED:
        return TASK_WORKFLOW, TaskRef(tenant_id=found.tenant, task_id=found.id)
    resources = found.parameters["resources"]
    models = await registered_models(deps, found)
    return PROCESS_WORKFLOW, ScheduledTaskRef(
        tenant_id=found.tenant,
        task_id=found.id,
        registered_models=models,
        registry_task_queue=deps.registry_task_queue,
        scheduling=TaskScheduling(
            project_id=found.parameters["project_id"],
            per_worker=WorkerResources(
                cpu_millis=int(resources["cpu_cores"]) * 1000, memory_bytes=int(resources["memory_bytes"])
            ),
            priority=int(found.parameters.get("priority", 0)),
        ),
    )


async def task_row(session: AsyncSession, caller: Principal, dataset_id: str, task_id: str) -> DatasetTask:
    query = select(DatasetTask).where(
        DatasetTask.id == task_id,
        DatasetTask.dataset_id == dataset_id,
        DatasetTask.tenant == caller.tenant_id,
    )
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"task {task_id!r} of dataset {dataset_id!r} does not exist")
    return found


async def task(deps: Deps, caller: Principal, dataset_id: str, task_id: str) -> DatasetTask:
    async with deps.db.session() as session:
        return await task_row(session, caller, dataset_id, task_id)


async def tasks(
    deps: Deps, caller: Principal, dataset_id: str, *, kind: str | None, state: str | None, limit: int
) -> list[DatasetTask]:
    """The dataset's tasks, newest first."""
    async with deps.db.session() as session:
        await dataset_row(session, caller, dataset_id)
        query = select(DatasetTask).where(
            DatasetTask.dataset_id == dataset_id, DatasetTask.tenant == caller.tenant_id
        )
        if kind is not None:
            query = query.where(DatasetTask.kind == kind)
        if state is not None:
            query = query.where(DatasetTask.state == state)
        query = query.order_by(col(DatasetTask.created_at).desc(), col(DatasetTask.id).desc()).limit(limit)
        return list((await session.exec(query)).all())


async def begin(deps: Deps, tenant: str, task_id: str) -> DatasetTask | None:
    """The task, now `running` in a new attempt (progress reset); None when it already ended."""
    async with deps.db.transaction() as session:
        found = await _locked(session, tenant, task_id)
        if found.state not in ACTIVE:
            return None
        if found.state == "pending":
            await move_task(session, found, "enqueue", None)
        found.attempt += 1
        found.progress, found.eta_s, found.progress_detail = 0.0, None, {}
        found.started_at = now()
        if found.state == "queued":
            await move_task(session, found, "start", None, attempt=found.attempt)
        session.add(found)
        return found


async def report(
    deps: Deps, tenant: str, task_id: str, progress: float, eta_s: float | None, detail: dict[str, Any]
) -> None:
    async with deps.db.transaction() as session:
        found = await _locked(session, tenant, task_id)
        if found.state != "running":
            return
        found.progress, found.eta_s, found.progress_detail = progress, eta_s, detail
        found.updated_at = now()
        session.add(found)


async def succeed(
    deps: Deps,
    tenant: str,
    task_id: str,
    *,
    stats: dict[str, int],
    result: dict[str, Any],
    output_version_id: str | None = None,
    session: AsyncSession | None = None,
) -> DatasetTask:
    """`running -> succeeded` with what it produced (in `session` when given, to commit with it)."""
    if session is None:
        async with deps.db.transaction() as own:
            return await succeed(
                deps,
                tenant,
                task_id,
                stats=stats,
                result=result,
                output_version_id=output_version_id,
                session=own,
            )
    found = await _locked(session, tenant, task_id)
    started = found.started_at or found.created_at
    found.stats, found.result, found.output_version_id = stats, result, output_version_id
    found.progress, found.eta_s = 1.0, 0.0
    await move_task(
        session,
        found,
        "succeed",
        None,
        output_version_id=output_version_id,
        stats=stats,
        duration_s=max(0.0, (now() - started).total_seconds()),
    )
    return found


async def end_task(
    deps: Deps, tenant: str, task_id: str, outcome: str, error: str | None = None
) -> DatasetTask:
    """Any active state -> cancelled (by whoever asked) or failed (with `error`); a task that already
    ended is left as it is. The request key is released either way."""
    async with deps.db.transaction() as session:
        found = await _locked(session, tenant, task_id)
        if found.state not in ACTIVE:
            return found
        found.request_key, found.eta_s = None, None
        if outcome == "cancelled":
            await move_task(session, found, "cancel", found.cancel_requested_by, reason=found.cancel_reason)
        else:
            found.error = (error or "the task failed")[:4000]
            await move_task(
                session, found, "fail", None, error=found.error, error_code=f"{found.kind}_failed"
            )
        return found


async def request_cancel(
    deps: Deps, caller: Principal, dataset_id: str, task_id: str, reason: str | None
) -> DatasetTask:
    """Ask the task's workflow to stop: it cancels the work and ends the task `cancelled`. A task whose
    workflow is gone is cancelled here directly. 409 when the task already ended."""
    async with deps.db.transaction() as session:
        found = await task_row(session, caller, dataset_id, task_id)
        found = await _locked(session, caller.tenant_id, found.id)
        TASK.transition(found.state, "cancel")  # 409 now rather than a silent no-op later
        found.cancel_requested_by, found.cancel_reason = caller.actor, reason
        session.add(found)
    handle = deps.temporal.get_workflow_handle(task_workflow_id(task_id))
    try:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            await handle.cancel()
            return found
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Unavailable(f"the workflow engine could not cancel the task: {error}") from error
    return await end_task(deps, caller.tenant_id, task_id, "cancelled")


async def _locked(session: AsyncSession, tenant: str, task_id: str) -> DatasetTask:
    query = (
        select(DatasetTask).where(DatasetTask.id == task_id, DatasetTask.tenant == tenant).with_for_update()
    )
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"task {task_id!r} does not exist")
    return found
