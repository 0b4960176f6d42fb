"""Routes of media previews (DS-3), one per kind, under `.../versions/{vid}/media/{kind}/{file name}`.

The kind comes before the file name, which may hold `/` (`images/cat.png`): a `{filename:path}` swallows
everything after it, so nothing can follow it. `media/` is its own segment, so no route here meets the
upload (`PUT .../files/{name}`) or the lifecycle (`POST .../{transition}`) routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import StreamingResponse
from forge_contracts.activities.dataset import FILE_NAME_PATTERN

from forge_dataset.media import domain, service
from forge_dataset.media.schemas import MediaInfo, Waveform
from forge_dataset.routing import CanDatasetRead, Deps

router = APIRouter(prefix="/datasets/{dataset_id}/versions/{version_id}/media", tags=["media"])


FileName = Annotated[
    str,
    Path(pattern=FILE_NAME_PATTERN, max_length=1000, description="The file's name in the version."),
]
# A version's file can be replaced while it is a draft: clients revalidate (ETag) rather than cache blindly.
_CACHING = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}
_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The image."}
}


def _not_modified(if_none_match: str | None, etag: str) -> Response | None:
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag, **_CACHING})
    return None


@router.get(
    "/content/{filename:path}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The whole file."},
        206: {"description": "The range asked for (`Content-Range`)."},
        304: {"description": "Unchanged (`If-None-Match`)."},
        416: {"description": "The range starts past the end of the file."},
    },
)
async def media_content(
    dataset_id: str,
    version_id: str,
    filename: FileName,
    deps: Deps,
    caller: CanDatasetRead,
    range_: Annotated[str | None, Header(alias="range", max_length=200)] = None,
    if_range: Annotated[str | None, Header(max_length=200)] = None,
    if_none_match: Annotated[str | None, Header(max_length=2000)] = None,
) -> Response:
    """The file's bytes with its media type: `Range: bytes=a-b`, `a-` or `-n` gives 206 and those bytes
    (one range; several are answered with the whole file), a range past the end 416. The ETag is the
    file's sha256. Usable as an <img>, <audio> or <video> source (seeking uses ranges)."""
    media = await service.media_file(deps, caller, dataset_id, version_id, filename)
    file = media.file
    etag = f'"{file.sha256}"'
    if (unchanged := _not_modified(if_none_match, etag)) is not None:
        return unchanged
    wanted = domain.requested_range(range_ if if_range in (None, etag) else None, file.size_bytes)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Length": str(wanted.length if wanted else file.size_bytes),
        "Content-Disposition": f'inline; filename="{file.name.rsplit("/", 1)[-1]}"',
        "Content-Security-Policy": "default-src 'none'; sandbox",
        **_CACHING,
    }
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range(file.size_bytes)
    return StreamingResponse(
        await service.content(deps, media, wanted),
        status_code=206 if wanted else 200,
        media_type=file.media_type,
        headers=headers,
    )


@router.get("/thumbnail/{filename:path}", response_class=Response, responses=_IMAGE)
async def media_thumbnail(
    dataset_id: str,
    version_id: str,
    filename: FileName,
    deps: Deps,
    caller: CanDatasetRead,
    size: Annotated[
        int,
        Query(ge=domain.THUMBNAIL_SIZES[0], le=domain.THUMBNAIL_SIZES[1], description="The longer side, px."),
    ] = domain.DEFAULT_THUMBNAIL_SIZE,
    if_none_match: Annotated[str | None, Header(max_length=2000)] = None,
) -> Response:
    """An image's thumbnail (aspect ratio kept, EXIF orientation applied): PNG for an image with
    transparency, JPEG otherwise. 422 for an unreadable image or one above the pixel limit."""
    media = await service.media_file(deps, caller, dataset_id, version_id, filename)
    etag = f'"{media.file.sha256}-thumbnail-{size}"'
    if (unchanged := _not_modified(if_none_match, etag)) is not None:
        return unchanged
    data, media_type = await service.thumbnail(deps, media, size)
    return Response(data, media_type=media_type, headers={"ETag": etag, **_CACHING})


@router.get("/waveform/{filename:path}")
async def media_waveform(
    dataset_id: str,
    version_id: str,
    filename: FileName,
    deps: Deps,
    caller: CanDatasetRead,
    points: Annotated[
        int,
        Query(ge=domain.WAVEFORM_POINTS[0], le=domain.WAVEFORM_POINTS[1], description="How many peaks."),
    ] = domain.DEFAULT_WAVEFORM_POINTS,
) -> Waveform:
    """An audio file's waveform: [min, max] peaks of its mono mix in `points` equal slices."""
    media = await service.media_file(deps, caller, dataset_id, version_id, filename)
    return await service.waveform(deps, media, points)


@router.get("/poster/{filename:path}", response_class=Response, responses=_IMAGE)
async def media_poster(
    dataset_id: str,
    version_id: str,
    filename: FileName,
    deps: Deps,
    caller: CanDatasetRead,
    at_s: Annotated[
        float | None,
        Query(ge=0, le=86400 * 7, allow_inf_nan=False, description="Seconds in (default: 10% in, ≤ 60 s)."),
    ] = None,
) -> Response:
    """A video's frame as a JPEG at the video's size."""
    media = await service.media_file(deps, caller, dataset_id, version_id, filename)
    frame = await service.poster(deps, media, at_s)
    return Response(frame, media_type="image/jpeg", headers=_CACHING)


@router.get("/info/{filename:path}")
async def media_info(
    dataset_id: str, version_id: str, filename: FileName, deps: Deps, caller: CanDatasetRead
) -> MediaInfo:
    """An image's, audio or video file's format, duration, size in pixels, codecs, rate and channels."""
    media = await service.media_file(deps, caller, dataset_id, version_id, filename)
    return await service.info(deps, media)
