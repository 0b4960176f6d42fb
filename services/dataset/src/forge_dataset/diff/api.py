"""Routes of version diffs: start one (a background task), read it, page through its changed records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from forge_dataset.diff import service
from forge_dataset.diff.schemas import Change, ChangePage, DiffRequest, DiffSummary, DiffView, FileChange
from forge_dataset.routing import CanDatasetRead, Deps
from forge_dataset.schemas import TaskView
from forge_dataset.tables import DatasetTask

router = APIRouter(prefix="/datasets/{dataset_id}/diffs", tags=["diffs"])


def _view(found: DatasetTask, files: list[FileChange]) -> DiffView:
    summary = found.result.get("summary") if found.state == "succeeded" else None
    return DiffView(
        task=TaskView.model_validate(found, from_attributes=True),
        base_version_id=found.parameters["base_version_id"],
        version_id=found.parameters["version_id"],
        key=found.parameters.get("key"),
        files=files,
        summary=None if summary is None else DiffSummary.model_validate(summary),
    )


@router.post("", status_code=202)
async def start_diff(
    dataset_id: str, body: DiffRequest, response: Response, deps: Deps, caller: CanDatasetRead
) -> DiffView:
    """Diff two published versions of the dataset: 202 with a new diff task, or 200 with the diff an
    identical request already made or is making (versions are immutable, so it is still right)."""
    found, created = await service.start_diff(deps, caller, dataset_id, body)
    if not created:
        response.status_code = 200
    return _view(*await service.diff_task(deps, caller, dataset_id, found.id))


@router.get("/{task_id}")
async def get_diff(dataset_id: str, task_id: str, deps: Deps, caller: CanDatasetRead) -> DiffView:
    """The diff: its task's progress and ETA, the file-level diff, and the record counts once done."""
    return _view(*await service.diff_task(deps, caller, dataset_id, task_id))


@router.get("/{task_id}/changes")
async def get_changes(
    dataset_id: str,
    task_id: str,
    deps: Deps,
    caller: CanDatasetRead,
    change: Change,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ChangePage:
    """Records `added` (in the new version only), `removed` (in the base only) or `changed` (key,
    fields that differ, before and after); 409 until the diff succeeded."""
    total, records = await service.changes(deps, caller, dataset_id, task_id, change, offset, limit)
    end = offset + len(records)
    return ChangePage(
        change=change, total=total, offset=offset, records=records, next_offset=end if end < total else None
    )
