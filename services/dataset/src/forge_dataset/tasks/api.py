"""Routes of dataset tasks: list a dataset's tasks, read one (state, progress, ETA, result), cancel one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from forge_dataset.routing import CanDatasetRead, CanDatasetWrite, Deps
from forge_dataset.schemas import TaskCancel, TaskView
from forge_dataset.tasks import service

router = APIRouter(prefix="/datasets/{dataset_id}/tasks", tags=["tasks"])


Kind = Literal["import", "expand", "split", "diff", "convert", "process", "features"]
State = Literal["pending", "queued", "running", "succeeded", "failed", "cancelled"]


@router.get("")
async def list_tasks(
    dataset_id: str,
    deps: Deps,
    caller: CanDatasetRead,
    kind: Kind | None = None,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TaskView]:
    """The dataset's tasks, newest first."""
    found = await service.tasks(deps, caller, dataset_id, kind=kind, state=state, limit=limit)
    return [TaskView.model_validate(t, from_attributes=True) for t in found]


@router.get("/{task_id}")
async def get_task(dataset_id: str, task_id: str, deps: Deps, caller: CanDatasetRead) -> TaskView:
    """A task: state, progress with its ETA, and once done its stats and result."""
    return TaskView.model_validate(
        await service.task(deps, caller, dataset_id, task_id), from_attributes=True
    )


@router.post("/{task_id}/cancel", status_code=202)
async def cancel_task(
    dataset_id: str, task_id: str, deps: Deps, caller: CanDatasetWrite, body: TaskCancel | None = None
) -> TaskView:
    """Ask a queued or running task to stop (202: it ends `cancelled` within seconds); 409 once ended."""
    found = await service.request_cancel(deps, caller, dataset_id, task_id, body.reason if body else None)
    return TaskView.model_validate(found, from_attributes=True)
