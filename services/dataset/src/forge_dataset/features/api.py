"""Routes of feature engineering: `POST /datasets/{id}/versions/{vid}/features` fits or applies a
transformer; `GET /datasets/{id}/transformers[/{tid}]` lists and reads the ones fitted on a dataset."""

from __future__ import annotations

from fastapi import APIRouter, Response

from forge_dataset.features import service
from forge_dataset.features.schemas import FeaturesRequest, TransformerView
from forge_dataset.routing import CanDatasetRead, CanDatasetWrite, Deps
from forge_dataset.schemas import TaskView

router = APIRouter(prefix="/datasets", tags=["features"])


@router.post("/{dataset_id}/versions/{version_id}/features", status_code=202)
async def version_features(
    dataset_id: str,
    version_id: str,
    body: FeaturesRequest,
    response: Response,
    deps: Deps,
    caller: CanDatasetWrite,
) -> TaskView:
    """Fit a feature transformer on the version, or apply a fitted one (202; follow the task: its output
    is a new version whose records carry their vectors; a fit's result names the new transformer), or
    200 with an identical request's task."""
    found, created = await service.start_features(deps, caller, dataset_id, version_id, body)
    if not created:
        response.status_code = 200
    return TaskView.model_validate(found, from_attributes=True)


@router.get("/{dataset_id}/transformers")
async def list_transformers(dataset_id: str, deps: Deps, caller: CanDatasetRead) -> list[TransformerView]:
    """The transformers fitted on the dataset's versions, newest first."""
    found = await service.transformers(deps, caller, dataset_id)
    return [TransformerView.model_validate(t, from_attributes=True) for t in found]


@router.get("/{dataset_id}/transformers/{transformer_id}")
async def get_transformer(
    dataset_id: str, transformer_id: str, deps: Deps, caller: CanDatasetRead
) -> TransformerView:
    found = await service.transformer(deps, caller, transformer_id, dataset_id=dataset_id)
    return TransformerView.model_validate(found, from_attributes=True)
