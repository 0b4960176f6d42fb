"""Routes of processing: `POST /datasets/{id}/versions/{vid}/process` starts a pipeline;
`GET /datasets/{id}/tasks/{task}/dropped` pages through what it removed and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from forge_dataset.processing import service
from forge_dataset.processing.schemas import DroppedPage, ProcessRequest
from forge_dataset.routing import CanDatasetRead, CanDatasetWrite, Deps
from forge_dataset.schemas import TaskView

router = APIRouter(prefix="/datasets", tags=["processing"])


@router.post("/{dataset_id}/versions/{version_id}/process", status_code=202)
async def process_version(
    dataset_id: str,
    version_id: str,
    body: ProcessRequest,
    response: Response,
    deps: Deps,
    caller: CanDatasetWrite,
) -> TaskView:
    """Start a pipeline of cleaning and dedup operators over the version (202; follow it at
    `/datasets/{id}/tasks/{task}`: it waits `queued` for the scheduler, shows progress while it runs, and
    its output is a new version; its result counts what each operator dropped and changed, with samples
    and duplicate clusters), or 200 with an identical request's task."""
    found, created = await service.start_process(deps, caller, dataset_id, version_id, body)
    if not created:
        response.status_code = 200
    return TaskView.model_validate(found, from_attributes=True)


@router.get("/{dataset_id}/tasks/{task_id}/dropped")
async def dropped_records(
    dataset_id: str,
    task_id: str,
    deps: Deps,
    caller: CanDatasetRead,
    op: Annotated[int | None, Query(ge=1, description="Only what this operator (1-based) dropped.")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DroppedPage:
    """Every record a processing task dropped, in source order: file, record number, operator, reason,
    the record it duplicates (for a duplicate) and the record itself."""
    return await service.dropped(deps, caller, dataset_id, task_id, op=op, offset=offset, limit=limit)
