"""Media previews (DS-3) on the real stack: a version's image, audio and video files served by range,
as thumbnails, waveforms and poster frames, decoded once and cached in the bucket."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest
from forge_dataset.media.domain import preview_key
from PIL import Image

from tests.services.dataset.clips import ffmpeg_clip
from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import ACME, GLOBEX, create_dataset, create_version, upload


@pytest.fixture(scope="module")
def tone() -> bytes:
    """One second of a 440 Hz sine at 16 kHz, mono WAV."""
    return ffmpeg_clip("-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=16000", suffix=".wav")


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Two seconds of a 160x120 test pattern at 10 fps, H.264 in MP4."""
    return ffmpeg_clip(
        *["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2"],
        *["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"],
        suffix=".mp4",
    )


def picture(width: int = 640, height: int = 480, fmt: str = "PNG", orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [((x * 255) // width, (y * 255) // height, 128) for y in range(height) for x in range(width)]
    )
    out = io.BytesIO()
    if orientation is None:
        image.save(out, fmt)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(out, fmt, exif=exif)
    return out.getvalue()


async def media_version(svc: DatasetService, modality: str, files: dict[str, bytes]) -> str:
    """A draft version of a new dataset of `modality` with `files`; its path."""
    dataset_id = await create_dataset(svc, name=f"media-{uuid.uuid4().hex[:8]}", modality=modality)
    version_id = await create_version(svc, dataset_id)
    for name, data in files.items():
        uploaded = await upload(svc, dataset_id, version_id, name, data)
        assert uploaded.status_code == 200, uploaded.text
    return f"/datasets/{dataset_id}/versions/{version_id}"


async def test_a_range_request_returns_those_bytes(dataset_service: DatasetService, tone: bytes) -> None:
    svc = dataset_service
    base = await media_version(svc, "audio", {"clips/a.wav": tone})
    url = f"{base}/media/content/clips/a.wav"

    whole = await svc.http.get(url, headers=ACME)
    middle = await svc.http.get(url, headers={**ACME, "Range": "bytes=100-1099"})
    tail = await svc.http.get(url, headers={**ACME, "Range": "bytes=-50"})
    rest = await svc.http.get(url, headers={**ACME, "Range": f"bytes={len(tone) - 10}-"})

    assert whole.status_code == 200 and whole.content == tone
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{hashlib.sha256(tone).hexdigest()}"'
    assert middle.status_code == 206 and middle.content == tone[100:1100]
    assert middle.headers["content-range"] == f"bytes 100-1099/{len(tone)}"
    assert middle.headers["content-length"] == "1000"
    assert tail.status_code == 206 and tail.content == tone[-50:]
    assert rest.status_code == 206 and rest.content == tone[-10:]


async def test_a_range_past_the_end_is_not_satisfiable(dataset_service: DatasetService, tone: bytes) -> None:
    svc = dataset_service
    base = await media_version(svc, "audio", {"a.wav": tone})

    response = await svc.http.get(
        f"{base}/media/content/a.wav", headers={**ACME, "Range": f"bytes={len(tone)}-"}
    )

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(tone)}"
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unchanged_file_is_not_sent_again(dataset_service: DatasetService, tone: bytes) -> None:
    svc = dataset_service
    base = await media_version(svc, "audio", {"a.wav": tone})
    first = await svc.http.get(f"{base}/media/content/a.wav", headers=ACME)

    again = await svc.http.get(
        f"{base}/media/content/a.wav", headers={**ACME, "If-None-Match": first.headers["etag"]}
    )

    assert again.status_code == 304 and again.content == b""


async def test_a_thumbnail_keeps_the_aspect_ratio_and_is_cached(dataset_service: DatasetService) -> None:
    svc = dataset_service
    image = picture(640, 480)
    base = await media_version(svc, "image", {"images/cat.png": image})
    url = f"{base}/media/thumbnail/images/cat.png?size=128"

    first = await svc.http.get(url, headers=ACME)
    cache_key = preview_key("acme", hashlib.sha256(image).hexdigest(), "thumbnail-128")
    cached_size = await svc.store.size(cache_key)
    second = await svc.http.get(url, headers=ACME)

    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(first.content)).size == (128, 96)
    assert cached_size == len(first.content)
    assert second.content == first.content


async def test_a_thumbnail_honours_the_exif_orientation(dataset_service: DatasetService) -> None:
    svc = dataset_service
    base = await media_version(svc, "image", {"side.jpg": picture(400, 200, "JPEG", orientation=6)})

    thumb = await svc.http.get(f"{base}/media/thumbnail/side.jpg", headers=ACME)
    info = await svc.http.get(f"{base}/media/info/side.jpg", headers=ACME)

    assert thumb.status_code == 200, thumb.text
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 256)  # rotated a quarter turn: portrait
    assert (info.json()["width"], info.json()["height"]) == (200, 400)


async def test_a_corrupt_image_is_unprocessable(dataset_service: DatasetService) -> None:
    svc = dataset_service
    base = await media_version(svc, "image", {"broken.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 100})

    response = await svc.http.get(f"{base}/media/thumbnail/broken.png", headers=ACME)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "not a readable image" in response.json()["detail"]


async def test_an_image_above_the_pixel_limit_is_refused(dataset_service: DatasetService) -> None:
    svc = dataset_service
    out = io.BytesIO()
    Image.new("1", (8200, 8200)).save(out, "PNG")  # 67 M pixels in a small file: a decompression bomb
    base = await media_version(svc, "image", {"bomb.png": out.getvalue()})

    response = await svc.http.get(f"{base}/media/thumbnail/bomb.png", headers=ACME)

    assert response.status_code == 422
    assert "8200x8200" in response.json()["detail"]


async def test_a_waveform_has_the_points_asked_for(dataset_service: DatasetService, tone: bytes) -> None:
    svc = dataset_service
    base = await media_version(svc, "audio", {"clips/a.wav": tone})

    response = await svc.http.get(f"{base}/media/waveform/clips/a.wav?points=200", headers=ACME)
    again = await svc.http.get(f"{base}/media/waveform/clips/a.wav?points=200", headers=ACME)

    assert response.status_code == 200, response.text
    waveform = response.json()
    assert (waveform["sample_rate"], waveform["channels"], waveform["points"]) == (16000, 1, 200)
    assert waveform["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert len(waveform["peaks"]) == 200
    assert all(low < -0.05 and high > 0.05 for low, high in waveform["peaks"])  # a tone: never silent
    assert again.json() == waveform


async def test_a_poster_is_a_jpeg_frame_of_the_video(dataset_service: DatasetService, clip: bytes) -> None:
    svc = dataset_service
    base = await media_version(svc, "video", {"v.mp4": clip})

    default = await svc.http.get(f"{base}/media/poster/v.mp4", headers=ACME)
    later = await svc.http.get(f"{base}/media/poster/v.mp4?at_s=1.5", headers=ACME)
    past_the_end = await svc.http.get(f"{base}/media/poster/v.mp4?at_s=5", headers=ACME)
    info = await svc.http.get(f"{base}/media/info/v.mp4", headers=ACME)

    assert default.status_code == 200, default.text
    assert default.headers["content-type"] == "image/jpeg"
    frame = Image.open(io.BytesIO(default.content))
    assert (frame.format, frame.size) == ("JPEG", (160, 120))
    assert later.status_code == 200 and later.content != default.content  # the pattern moves
    assert past_the_end.status_code == 422
    assert info.status_code == 200, info.text
    assert {k: info.json()[k] for k in ("modality", "width", "height", "codec")} == {
        "modality": "video",
        "width": 160,
        "height": 120,
        "codec": "h264",
    }
    assert info.json()["duration_s"] == pytest.approx(2.0, abs=0.2)


async def test_a_preview_of_the_wrong_kind_is_unprocessable(
    dataset_service: DatasetService, tone: bytes
) -> None:
    svc = dataset_service
    base = await media_version(svc, "audio", {"a.wav": tone})

    response = await svc.http.get(f"{base}/media/thumbnail/a.wav", headers=ACME)

    assert response.status_code == 422
    assert "not image" in response.json()["detail"]


async def test_another_tenants_media_is_not_found(dataset_service: DatasetService, tone: bytes) -> None:
    svc = dataset_service
    base = await media_version(svc, "audio", {"a.wav": tone})

    responses = [
        await svc.http.get(f"{base}/media/{kind}/a.wav", headers=GLOBEX)
        for kind in ("content", "waveform", "info", "thumbnail", "poster")
    ]
    missing = await svc.http.get(f"{base}/media/content/b.wav", headers=ACME)

    assert [r.status_code for r in responses] == [404] * 5
    assert missing.status_code == 404


async def test_the_version_preview_links_each_media_file(
    dataset_service: DatasetService, tone: bytes
) -> None:
    svc = dataset_service
    base = await media_version(
        svc, "image", {"images/cat.png": picture(32, 32), "clips/a.wav": tone, "labels.jsonl": b'{"a": 1}\n'}
    )

    response = await svc.http.get(f"{base}/preview", headers=ACME)

    assert response.status_code == 200, response.text
    preview = response.json()
    by_name = {m["name"]: m for m in preview["media"]}
    assert set(by_name) == {"images/cat.png", "clips/a.wav"}
    assert by_name["images/cat.png"]["thumbnail"] == f"{base}/media/thumbnail/images/cat.png"
    assert by_name["clips/a.wav"]["waveform"] == f"{base}/media/waveform/clips/a.wav"
    linked = await svc.http.get(by_name["images/cat.png"]["content"], headers=ACME)
    assert linked.status_code == 200 and linked.headers["content-type"] == "image/png"
