"""HTTP routes of the dataset service: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_kit.errors import Unprocessable

from forge_dataset import service
from forge_dataset.archives import service as archives_service
from forge_dataset.deps import Deps as ServiceDeps
from forge_dataset.domain import Modality
from forge_dataset.formats import is_archive
from forge_dataset.media.references import media_fields, references
from forge_dataset.media.service import media_links
from forge_dataset.preview import RecordQuery
from forge_dataset.routing import CanDatasetRead, CanDatasetWrite, Deps
from forge_dataset.schemas import (
    DatasetCreate,
    DatasetView,
    FileView,
    LineageStep,
    LineageView,
    PreviewItem,
    PreviewView,
    SplitRequest,
    TaskView,
    VersionStateChange,
    VersionView,
)
from forge_dataset.split import service as split_service
from forge_dataset.tables import DatasetVersion, VersionFile
from forge_dataset.uploads import service as uploads_service

router = APIRouter(prefix="/datasets", tags=["datasets"])


FileName = Annotated[
    str,
    Path(
        pattern=FILE_NAME_PATTERN,
        max_length=1000,
        description="A relative path ending in its kind: `train.jsonl`, `table.parquet`, `images/001.png`.",
    ),
]


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


@router.put(
    "/{dataset_id}/versions/{version_id}/files/{filename:path}",
    responses={202: {"model": TaskView, "description": "An archive being expanded (`expand=true`)."}},
)
async def upload_file(
    dataset_id: str,
    version_id: str,
    filename: FileName,
    request: Request,
    response: Response,
    deps: Deps,
    caller: CanDatasetWrite,
    expand: Annotated[
        bool,
        Query(description="For a zip or tar archive: add its members as files (a task) instead of itself."),
    ] = False,
    prefix: Annotated[
        str,
        Query(
            max_length=500,
            pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]{0,122}/?)*$",
            description="With `expand`: the folder the members go under, e.g. `images`.",
        ),
    ] = "",
) -> FileView | TaskView:
    """The request body is the file, streamed (any content type): JSONL, CSV or Parquet records, or a
    media file or any other blob (`images/001.png`), checked against what its name says it is. With
    `expand=true` an archive (`.zip`, `.tar`, `.tar.gz`, `.tgz`) is expanded by a background task
    (202; follow it at `/datasets/{id}/tasks/{task}`), each member checked like an upload; the version
    can be published once the task succeeded."""
    if expand:
        if not is_archive(filename):
            raise Unprocessable(f"{filename!r} is not a zip or tar archive: only archives can be expanded")
        task, created = await archives_service.stage(
            deps, caller, dataset_id, version_id, filename, request.stream(), prefix
        )
        response.status_code = 202 if created else 200
        return TaskView.model_validate(task, from_attributes=True)
    uploaded = await uploads_service.upload_file(
        deps, caller, dataset_id, version_id, filename, request.stream()
    )
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
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Matching records to skip.")] = 0,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="Text to search for.")] = None,
    where: Annotated[
        list[str],
        Query(
            max_length=20,
            description="`field=value` filters on top-level fields (strings as is, others as JSON).",
        ),
    ] = [],  # noqa: B006 (FastAPI copies query defaults)
    file: Annotated[str | None, Query(max_length=1000, description="Only this file's records.")] = None,
    fields: Annotated[list[str], Query(max_length=100, description="Only these fields of each record.")] = [],  # noqa: B006
) -> PreviewView:
    """A page of the version's records (JSONL, CSV and Parquet files alike), filtered by search text
    and field values, and where each media file's previews are (thumbnail, waveform, poster, content)."""
    filters: dict[str, str] = {}
    for condition in where:
        name, equals, value = condition.partition("=")
        if not equals or not name:
            raise Unprocessable(f"where: {condition!r} is not `field=value`")
        filters[name] = value
    query = RecordQuery(offset=offset, limit=limit, q=q, where=filters, file=file, fields=tuple(fields))
    owner, found, files, page = await service.preview(deps, caller, dataset_id, version_id, query)
    linked = media_fields(owner.schema_hint)
    return PreviewView(
        version_id=found.id,
        modality=Modality(owner.modality),
        records=[item.record for item in page.items],
        items=[
            PreviewItem(file=i.file, index=i.index, record=i.record, references=references(i.record, linked))
            for i in page.items
        ],
        next_offset=page.next_offset,
        scanned=page.scanned,
        complete=page.complete,
        files=[FileView.model_validate(f, from_attributes=True) for f in files],
        media=media_links(dataset_id, found.id, files),
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
