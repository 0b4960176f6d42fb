"""Route of conversions: `POST /datasets/{id}/versions/{vid}/convert`."""

from __future__ import annotations

from fastapi import APIRouter, Response

from forge_dataset.convert import service
from forge_dataset.convert.schemas import ConvertRequest
from forge_dataset.routing import CanDatasetWrite, Deps
from forge_dataset.schemas import TaskView

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("/{dataset_id}/versions/{version_id}/convert", status_code=202)
async def convert_version(
    dataset_id: str,
    version_id: str,
    body: ConvertRequest,
    response: Response,
    deps: Deps,
    caller: CanDatasetWrite,
) -> TaskView:
    """Start a conversion of the version's JSONL and CSV record files to Parquet (202; follow it at
    `/datasets/{id}/tasks/{task}`: its output is a new published version), or 200 with an identical
    request's task."""
    found, created = await service.start_convert(deps, caller, dataset_id, version_id, body)
    if not created:
        response.status_code = 200
    return TaskView.model_validate(found, from_attributes=True)
