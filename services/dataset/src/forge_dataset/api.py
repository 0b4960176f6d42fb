"""HTTP routes of the dataset service: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action

from forge_dataset import service
from forge_dataset.deps import Deps as ServiceDeps
from forge_dataset.domain import Modality
from forge_dataset.schemas import (
    DatasetCreate,
    DatasetView,
    FileView,
    LineageStep,
    LineageView,
    PreviewView,
    SplitRequest,
    TaskView,
    VersionStateChange,
    VersionView,
)
from forge_dataset.split import service as split_service
from forge_dataset.tables import DatasetVersion, VersionFile

router = APIRouter(prefix="/datasets", tags=["datasets"])


def _deps(request: Request) -> ServiceDeps:
    deps: ServiceDeps = request.app.state.deps
    return deps


CanDatasetRead = Annotated[Principal, allow(Action.DATASET_READ)]
CanDatasetWrite = Annotated[Principal, allow(Action.DATASET_WRITE)]
Deps = Annotated[ServiceDeps, Depends(_deps)]
FileName = Annotated[str, Path(pattern=FILE_NAME_PATTERN, description="A `.jsonl` file name.")]


def _version_view(
    deps: ServiceDeps, version: DatasetVersion, files: list[VersionFile] | None = None
) -> VersionView:
    view = VersionView.model_validate(version, from_attributes=True)
    return view.model_copy(
        update={
            "files": [FileView.model_validate(f, from_attributes=True) for f in files or []],
            "manifest_uri": deps.store.uri(version.manifest_key) if version.manifest_key else None,
        }
    )


@router.post("", status_code=201)
async def create_dataset(body: DatasetCreate, deps: Deps, caller: CanDatasetWrite) -> DatasetView:
    return DatasetView.model_validate(await service.create_dataset(deps, caller, body), from_attributes=True)


@router.get("")
async def list_datasets(deps: Deps, caller: CanDatasetRead) -> list[DatasetView]:
    return [DatasetView.model_validate(d, from_attributes=True) for d in await service.datasets(deps, caller)]


@router.get("/{dataset_id}")
async def get_dataset(dataset_id: str, deps: Deps, caller: CanDatasetRead) -> DatasetView:
    return DatasetView.model_validate(await service.dataset(deps, caller, dataset_id), from_attributes=True)


@router.post("/{dataset_id}/versions", status_code=201)
async def create_version(dataset_id: str, deps: Deps, caller: CanDatasetWrite) -> VersionView:
    return _version_view(deps, await service.create_version(deps, caller, dataset_id))


@router.get("/{dataset_id}/versions")
async def list_versions(dataset_id: str, deps: Deps, caller: CanDatasetRead) -> list[VersionView]:
    return [_version_view(deps, v) for v in await service.versions(deps, caller, dataset_id)]


@router.get("/{dataset_id}/versions/{version_id}")
async def get_version(dataset_id: str, version_id: str, deps: Deps, caller: CanDatasetRead) -> VersionView:
    found, files = await service.version(deps, caller, dataset_id, version_id)
    return _version_view(deps, found, files)


@router.put("/{dataset_id}/versions/{version_id}/files/{filename}")
async def upload_file(
    dataset_id: str,
    version_id: str,
    filename: FileName,
    request: Request,
    deps: Deps,
    caller: CanDatasetWrite,
) -> FileView:
    """The request body is the JSONL file, streamed (any content type)."""
    uploaded = await service.upload_file(deps, caller, dataset_id, version_id, filename, request.stream())
    return FileView.model_validate(uploaded, from_attributes=True)


@router.post("/{dataset_id}/versions/{version_id}/publish")
async def publish_version(
    dataset_id: str, version_id: str, deps: Deps, caller: CanDatasetWrite
) -> VersionView:
    await service.publish_version(deps, caller, dataset_id, version_id)
    found, files = await service.version(deps, caller, dataset_id, version_id)
    return _version_view(deps, found, files)


@router.post("/{dataset_id}/versions/{version_id}/split", status_code=202)
async def split_version(
    dataset_id: str,
    version_id: str,
    body: SplitRequest,
    response: Response,
    deps: Deps,
    caller: CanDatasetWrite,
) -> TaskView:
    """Start a split task (202; follow it at `/datasets/{id}/tasks/{task}`: its output is a new published
    version), or 200 with an identical request's task (same seed and parameters: the same output)."""
    found, created = await split_service.start_split(deps, caller, dataset_id, version_id, body)
    if not created:
        response.status_code = 200
    return TaskView.model_validate(found, from_attributes=True)


@router.get("/{dataset_id}/versions/{version_id}/lineage")
async def get_lineage(dataset_id: str, version_id: str, deps: Deps, caller: CanDatasetRead) -> LineageView:
    chain = await service.lineage(deps, caller, dataset_id, version_id)
    return LineageView(
        version_id=version_id, chain=[LineageStep.model_validate(v, from_attributes=True) for v in chain]
    )


@router.get("/{dataset_id}/versions/{version_id}/preview")
async def preview_version(
    dataset_id: str,
    version_id: str,
    deps: Deps,
    caller: CanDatasetRead,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> PreviewView:
    owner, found, files, records = await service.preview(deps, caller, dataset_id, version_id, limit)
    modality = Modality(owner.modality)
    return PreviewView(
        version_id=found.id,
        modality=modality,
        records=records,
        files=[FileView.model_validate(f, from_attributes=True) for f in files],
        note=None
        if modality == Modality.text
        else f"no item preview for {modality} datasets yet: files only",
    )


# Last: its path would otherwise shadow /publish and /split.
@router.post("/{dataset_id}/versions/{version_id}/{transition}")
async def change_version_state(
    dataset_id: str,
    version_id: str,
    transition: Annotated[Literal["deprecate", "restore", "archive", "discard", "revise"], Path()],
    deps: Deps,
    caller: CanDatasetWrite,
    body: VersionStateChange | None = None,
) -> VersionView:
    """Deprecate, restore (roll back to a deprecated version), archive, discard, or revise (reopen an
    invalid version as a draft)."""
    change = body or VersionStateChange()
    await service.change_version_state(
        deps,
        caller,
        dataset_id,
        version_id,
        transition,
        reason=change.reason,
        replaced_by_version_id=change.replaced_by_version_id,
    )
    found, files = await service.version(deps, caller, dataset_id, version_id)
    return _version_view(deps, found, files)
