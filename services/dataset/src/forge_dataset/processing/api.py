"""Routes of processing: `POST /datasets/{id}/versions/{vid}/process` starts a pipeline;
`GET /datasets/{id}/tasks/{task}/dropped` pages through what it removed and why, and
`GET /datasets/{id}/tasks/{task}/lineage` traces each output record to its source record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from forge_dataset.processing import service
from forge_dataset.processing.schemas import DroppedPage, LineageQuery, ProcessRequest, RecordLineagePage
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
    """Start a pipeline of cleaning, dedup and augmentation operators over the version (202; follow it at
    `/datasets/{id}/tasks/{task}`: it waits `queued` for the scheduler, shows progress while it runs, and
    its output is a new version; its result counts what each operator dropped, changed and added, with
    samples and duplicate clusters), or 200 with an identical request's task."""
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


@router.get("/{dataset_id}/tasks/{task_id}/lineage")
async def record_lineage(
    dataset_id: str,
    task_id: str,
    deps: Deps,
    caller: CanDatasetRead,
    query: Annotated[LineageQuery, Depends()],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RecordLineagePage:
    """Each output record of a processing task with the source record it came from and, for an augmented
    copy, the operator and seed that made it; filter by output place (`file`, `record`) or by source
    (`source_file`, `source_record`: what became of that record)."""
    return await service.lineage(deps, caller, dataset_id, task_id, query, offset=offset, limit=limit)
