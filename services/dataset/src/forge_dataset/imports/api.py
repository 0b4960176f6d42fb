"""Route of imports: start one (a background task; follow it at /datasets/{id}/tasks/{task})."""

from __future__ import annotations

from fastapi import APIRouter, Response

from forge_dataset.imports import service
from forge_dataset.imports.schemas import ImportRequest
from forge_dataset.routing import CanDatasetWrite, Deps
from forge_dataset.schemas import TaskView

router = APIRouter(prefix="/datasets/{dataset_id}/imports", tags=["imports"])


@router.post("", status_code=202)
async def start_import(
    dataset_id: str, body: ImportRequest, response: Response, deps: Deps, caller: CanDatasetWrite
) -> TaskView:
    """Import files into a new version of the dataset: 202 with the task (its output, once it succeeded,
    is the published version), or 200 with an identical request's task. A URL that may not be fetched
    (not http(s), a private or loopback address, a host that does not resolve) is a 422 at once."""
    found, created = await service.start_import(deps, caller, dataset_id, body)
    if not created:
        response.status_code = 200
    return TaskView.model_validate(found, from_attributes=True)
