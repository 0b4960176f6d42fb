"""Use cases of media previews: a version's file by name (never a caller-given key), its bytes by range,
and previews decoded from a local copy (Pillow for images, ffmpeg/ffprobe for audio and video), each
cached in the bucket under a content-addressed key so the same bytes are decoded once."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from forge_kit.auth import Principal
from forge_kit.errors import NotFound, Unavailable, Unprocessable
from PIL import Image, ImageOps, UnidentifiedImageError

from forge_dataset import formats
from forge_dataset.deps import Deps
from forge_dataset.media import domain
from forge_dataset.media.domain import ByteRange
from forge_dataset.media.schemas import MediaInfo, MediaLinks, Waveform
from forge_dataset.rows import readable_version
from forge_dataset.tables import VersionFile

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}
"""EXIF orientations that swap width and height."""


@dataclass(frozen=True)
class MediaFile:
    tenant: str
    """The dataset owner's (previews are cached with the owner's blobs)."""
    dataset_id: str
    version_id: str
    file: VersionFile

    @property
    def modality(self) -> str | None:
        return domain.modality_of(self.file.media_type)

    def cache_key(self, artefact: str) -> str:
        return domain.preview_key(self.tenant, self.file.sha256, artefact)


async def media_file(deps: Deps, caller: Principal, dataset_id: str, version_id: str, name: str) -> MediaFile:
    """The file called `name` of a version the caller may read, or NotFound (another tenant's too)."""
    async with deps.db.session() as session:
        access, version = await readable_version(session, caller, dataset_id, version_id)
        found = await session.get(VersionFile, (version.id, name))
    if found is None or not found.sha256:
        raise NotFound(f"file {name!r} is not in version {version_id!r}")
    return MediaFile(access.dataset.tenant, dataset_id, version.id, found)


# --- content -----------------------------------------------------------------------------------------


async def content(deps: Deps, media: MediaFile, wanted: ByteRange | None) -> AsyncGenerator[bytes, None]:
    """The file's bytes (`wanted` of them, else all), streamed from the bucket by a ranged GetObject. The
    first chunk is read before this returns, so a missing object fails the request, not the stream."""
    key = media.file.object_key
    chunks = deps.store.read(key) if wanted is None else deps.store.read_range(key, wanted.start, wanted.end)
    try:
        first = await anext(chunks)
    except ClientError as error:
        await chunks.aclose()
        raise Unavailable(f"the bytes of {media.file.name!r} cannot be read now") from error
    except StopAsyncIteration:
        first = b""

    async def stream() -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(chunks):
            if first:
                yield first
            async for chunk in chunks:
                yield chunk

    return stream()


# --- previews ----------------------------------------------------------------------------------------


async def thumbnail(deps: Deps, media: MediaFile, size: int) -> tuple[bytes, str]:
    """An image's thumbnail at most `size` pixels on its longer side (aspect kept, EXIF orientation
    applied): PNG when the image has transparency, JPEG otherwise; and its media type."""
    _require(media, "image")
    key = media.cache_key(f"thumbnail-{size}")
    if (cached := await _cached(deps, key)) is None:
        async with _local_copy(deps, media) as copy:
            cached = await asyncio.to_thread(_thumbnail, await copy.path(), size, media.file.name)
        await deps.store.put(key, cached)
    return cached, "image/png" if cached.startswith(PNG_SIGNATURE) else "image/jpeg"


async def waveform(deps: Deps, media: MediaFile, points: int) -> Waveform:
    """An audio clip's min/max peaks in `points` slices, decoded by ffmpeg to mono PCM on a pipe."""
    _require(media, "audio")
    key = media.cache_key(f"waveform-{points}.json")
    if (cached := await _cached(deps, key)) is not None:
        return Waveform.model_validate_json(cached)
    async with _local_copy(deps, media) as copy:
        info = await _info(deps, media, copy)
        if not info.sample_rate:
            raise Unprocessable(f"{media.file.name!r} has no audio stream")
        made = await _waveform(await copy.path(), info, points, media.file.name)
    await deps.store.put(key, made.model_dump_json().encode())
    return made


async def poster(deps: Deps, media: MediaFile, at_s: float | None) -> bytes:
    """A JPEG of the video's frame at `at_s` seconds (default: 10% in, capped), at the video's size."""
    _require(media, "video")
    async with _local_copy(deps, media) as copy:
        info = await _info(deps, media, copy)
        if info.width is None:
            raise Unprocessable(f"{media.file.name!r} has no video stream")
        at = domain.poster_time_s(info.duration_s) if at_s is None else at_s
        if info.duration_s is not None and at > 0 and at >= info.duration_s:
            raise Unprocessable(f"at_s={at:g} is past the end of the clip ({info.duration_s:g} s)")
        at_ms = round(at * 1000)
        key = media.cache_key(f"poster-{at_ms}ms.jpg")
        if (cached := await _cached(deps, key)) is not None:
            return cached
        source = str(await copy.path())
        frame = await _ffmpeg_output(
            [
                *[FFMPEG, "-v", "error", "-nostdin", "-ss", f"{at_ms / 1000:.3f}", "-i", source],
                *["-map", "0:v:0", "-frames:v", "1", "-an", "-f", "image2pipe", "-c:v", "mjpeg"],
                *["-q:v", "3", "pipe:1"],
            ],
            media.file.name,
        )
    if not frame.startswith(b"\xff\xd8"):
        raise Unprocessable(f"no frame of {media.file.name!r} at {at:g} s")
    await deps.store.put(key, frame)
    return frame


async def info(deps: Deps, media: MediaFile) -> MediaInfo:
    """What the media file is: format, duration, size in pixels, codecs, sample rate, channels."""
    if media.modality is None:
        raise Unprocessable(f"{media.file.name!r} is {media.file.media_type}, not an image, audio or video")
    async with _local_copy(deps, media) as copy:
        return await _info(deps, media, copy)


def media_links(dataset_id: str, version_id: str, files: Sequence[VersionFile]) -> list[MediaLinks]:
    """The preview paths of a version's image, audio and video files (other files have none)."""
    base = f"/datasets/{dataset_id}/versions/{version_id}/media"
    links = []
    for f in files:
        modality = domain.modality_of(f.media_type)
        if modality is None or not f.sha256:
            continue
        links.append(
            MediaLinks(
                name=f.name,
                media_type=f.media_type,
                modality=modality,
                content=f"{base}/content/{f.name}",
                info=f"{base}/info/{f.name}",
                thumbnail=f"{base}/thumbnail/{f.name}" if modality == "image" else None,
                waveform=f"{base}/waveform/{f.name}" if modality == "audio" else None,
                poster=f"{base}/poster/{f.name}" if modality == "video" else None,
            )
        )
    return links


# --- helpers -----------------------------------------------------------------------------------------


def _require(media: MediaFile, modality: str) -> None:
    if media.modality != modality:
        raise Unprocessable(f"{media.file.name!r} is {media.file.media_type}, not {modality}")


async def _cached(deps: Deps, key: str) -> bytes | None:
    """A cached preview's bytes, or None when it was not made yet."""
    try:
        return await deps.store.read_all(key)
    except ClientError as error:
        if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise


class _LocalCopy:
    """The file downloaded, on first use, to a temporary directory under the work dir (at most
    MAX_DECODE_BYTES). Its name is ours (`input` and a known suffix), never the caller's."""

    def __init__(self, deps: Deps, media: MediaFile, folder: Path) -> None:
        self._deps, self._media, self._folder = deps, media, folder
        self._path: Path | None = None

    async def path(self) -> Path:
        if self._path is not None:
            return self._path
        file = self._media.file
        if file.size_bytes > domain.MAX_DECODE_BYTES:
            raise Unprocessable(
                f"{file.name!r} is larger than the {domain.MAX_DECODE_BYTES} bytes previews decode"
            )
        known = formats.suffix(file.name)
        path = self._folder / ("input" + (known if known in formats.MEDIA else ""))
        with path.open("wb") as out:
            written = 0
            async with contextlib.aclosing(self._deps.store.read(file.object_key)) as chunks:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > domain.MAX_DECODE_BYTES:
                        raise Unprocessable(f"{file.name!r} is larger than previews decode")
                    await asyncio.to_thread(out.write, chunk)
        self._path = path
        return path


@contextlib.asynccontextmanager
async def _local_copy(deps: Deps, media: MediaFile) -> AsyncIterator[_LocalCopy]:
    """A lazily downloaded copy of the file, removed afterwards."""
    if deps.work_dir is not None:
        deps.work_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="forge-media-", dir=deps.work_dir))
    try:
        yield _LocalCopy(deps, media, folder)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _info(deps: Deps, media: MediaFile, copy: _LocalCopy) -> MediaInfo:
    key = media.cache_key("info.json")
    if (cached := await _cached(deps, key)) is not None:
        return MediaInfo.model_validate_json(cached)
    path = await copy.path()
    if media.modality == "image":
        made = await asyncio.to_thread(_image_info, media, path)
    else:
        probed = await _ffmpeg_output(
            [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            media.file.name,
        )
        made = _probe_info(media, json.loads(probed or b"{}"))
    await deps.store.put(key, made.model_dump_json().encode())
    return made


async def _ffmpeg_output(args: list[str], name: str) -> bytes:
    """Run ffmpeg or ffprobe (no shell; arguments are ours and validated numbers) with a timeout; its
    stdout, or Unprocessable with the last line it printed on failure."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), domain.DECODE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise Unprocessable(f"decoding {name!r} took longer than {domain.DECODE_TIMEOUT_S:g} s") from None
    if process.returncode != 0:
        raise Unprocessable(f"{name!r} cannot be decoded: {_last_line(err, args)}")
    return out


def _last_line(stderr: bytes, args: list[str]) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    line = lines[-1] if lines else "no detail"
    for arg in args:  # never show the server's paths
        if arg.startswith("/"):
            line = line.replace(arg, "input")
    return line[:300]


async def _waveform(path: Path, info: MediaInfo, points: int, name: str) -> Waveform:
    rate = info.sample_rate or 1
    duration = info.duration_s or 0.0
    peaks = domain.Peaks(total_samples=math.ceil(duration * rate), points=points)
    process = await asyncio.create_subprocess_exec(
        *[FFMPEG, "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-ac", "1"],
        *["-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        async with asyncio.timeout(domain.DECODE_TIMEOUT_S):
            while chunk := await process.stdout.read(256 * 1024):
                peaks.feed(chunk)
            await process.wait()
    except TimeoutError:
        raise Unprocessable(f"decoding {name!r} took longer than {domain.DECODE_TIMEOUT_S:g} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        err = await errors
    if process.returncode != 0:
        raise Unprocessable(f"{name!r} cannot be decoded: {_last_line(err, [str(path)])}")
    if peaks.seen == 0:
        raise Unprocessable(f"{name!r} holds no audio samples")
    return Waveform(
        duration_s=info.duration_s or round(peaks.seen / rate, 6),
        sample_rate=rate,
        channels=info.channels or 1,
        points=len(peaks.mins),
        peaks=peaks.normalised(),
    )


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """A number ffprobe printed (as a string), or None for a missing or bad one."""
    try:
        parsed = kind(value)
    except (TypeError, ValueError):
        return None
    return parsed if math.isfinite(parsed) else None


def _rate(value: Any) -> float | None:
    """A frame rate ffprobe prints as `30000/1001`."""
    if not isinstance(value, str) or "/" not in value:
        return None
    top, bottom = (_number(part, float) for part in value.split("/", 1))
    return round(top / bottom, 3) if top and bottom else None


def _probe_info(media: MediaFile, probed: dict[str, Any]) -> MediaInfo:
    streams = probed.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    container = probed.get("format") or {}
    duration = _number(container.get("duration"), float)
    if duration is None:
        duration = _number((video or audio or {}).get("duration"), float)
    return MediaInfo(
        name=media.file.name,
        media_type=media.file.media_type,
        modality=media.modality or "video",
        size_bytes=media.file.size_bytes,
        sha256=media.file.sha256,
        format=container.get("format_name"),
        duration_s=duration,
        width=_number(video.get("width"), int) if video else None,
        height=_number(video.get("height"), int) if video else None,
        codec=(video or audio or {}).get("codec_name"),
        audio_codec=audio.get("codec_name") if audio else None,
        frame_rate=_rate(video.get("avg_frame_rate")) if video else None,
        sample_rate=_number(audio.get("sample_rate"), int) if audio else None,
        channels=_number(audio.get("channels"), int) if audio else None,
        bit_rate=_number(container.get("bit_rate"), int),
    )


def _opened(path: Path, name: str) -> Image.Image:
    """The image, its header read (not its pixels), refused above MAX_IMAGE_PIXELS."""
    try:
        image = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise Unprocessable(f"{name!r} is not a readable image ({error})") from None
    width, height = image.size
    if width * height > domain.MAX_IMAGE_PIXELS:
        image.close()
        raise Unprocessable(
            f"{name!r} is {width}x{height} pixels, more than the {domain.MAX_IMAGE_PIXELS} previews decode"
        )
    return image


def _image_info(media: MediaFile, path: Path) -> MediaInfo:
    with _opened(path, media.file.name) as image:
        width, height = image.size
        if image.getexif().get(_ORIENTATION) in _ROTATED:
            width, height = height, width
        return MediaInfo(
            name=media.file.name,
            media_type=media.file.media_type,
            modality="image",
            size_bytes=media.file.size_bytes,
            sha256=media.file.sha256,
            format=(image.format or "").lower() or None,
            width=width,
            height=height,
            codec=(image.format or "").lower() or None,
        )


def _thumbnail(path: Path, size: int, name: str) -> bytes:
    with _opened(path, name) as image:
        try:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, cheaply
            shown = ImageOps.exif_transpose(image)
            shown.thumbnail((size, size), Image.Resampling.LANCZOS)
            transparent = shown.mode in {"RGBA", "LA", "PA"} or "transparency" in shown.info
            out = io.BytesIO()
            if transparent:
                shown.convert("RGBA").save(out, "PNG", optimize=True)
            else:
                shown.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
        except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as error:
            raise Unprocessable(f"{name!r} is not a readable image ({error})") from None
    return out.getvalue()
