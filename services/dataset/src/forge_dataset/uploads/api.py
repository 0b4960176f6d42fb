"""Routes of resumable uploads: start one, send its parts (in any order, again after a failure), see
which arrived, complete or abort it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from forge_dataset.routing import CanDatasetWrite, Deps
from forge_dataset.schemas import FileView
from forge_dataset.uploads import service
from forge_dataset.uploads.schemas import PartView, UploadStart, UploadView

router = APIRouter(prefix="/datasets/{dataset_id}/versions/{version_id}/uploads", tags=["uploads"])


PartNumber = Annotated[int, Path(ge=1, le=service.MAX_PARTS)]


@router.post("", status_code=201)
async def start_upload(
    dataset_id: str, version_id: str, body: UploadStart, deps: Deps, caller: CanDatasetWrite
) -> UploadView:
    """Start a resumable upload of one file into a draft version (for large files, flaky links)."""
    found = await service.start(
        deps,
        caller,
        dataset_id,
        version_id,
        name=body.name,
        part_bytes=body.part_bytes,
        size_bytes=body.size_bytes,
        sha256=body.sha256,
    )
    return UploadView.model_validate(found, from_attributes=True)


@router.get("/{upload_id}")
async def get_upload(
    dataset_id: str, version_id: str, upload_id: str, deps: Deps, caller: CanDatasetWrite
) -> UploadView:
    """The upload and the parts received so far: resend the missing ones, then complete."""
    found, parts = await service.status(deps, caller, dataset_id, version_id, upload_id)
    view = UploadView.model_validate(found, from_attributes=True)
    return view.model_copy(update={"parts": [PartView(**p) for p in parts]})


@router.put("/{upload_id}/parts/{number}")
async def put_part(
    dataset_id: str,
    version_id: str,
    upload_id: str,
    number: PartNumber,
    request: Request,
    deps: Deps,
    caller: CanDatasetWrite,
) -> PartView:
    """The request body is part `number` (1-based) of the file, `part_bytes` long except the last."""
    sent = await service.put_part(deps, caller, dataset_id, version_id, upload_id, number, request.stream())
    return PartView(**sent)


@router.post("/{upload_id}/complete")
async def complete_upload(
    dataset_id: str, version_id: str, upload_id: str, deps: Deps, caller: CanDatasetWrite
) -> FileView:
    """Join the parts and check the file; it is then one of the version's files."""
    file = await service.complete(deps, caller, dataset_id, version_id, upload_id)
    return FileView.model_validate(file, from_attributes=True)


@router.delete("/{upload_id}")
async def abort_upload(
    dataset_id: str, version_id: str, upload_id: str, deps: Deps, caller: CanDatasetWrite
) -> UploadView:
    """Abort an open upload: its parts are dropped."""
    return UploadView.model_validate(
        await service.abort(deps, caller, dataset_id, version_id, upload_id), from_attributes=True
    )
