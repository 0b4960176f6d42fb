"""Response models of media previews."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MediaInfo(BaseModel):
    """What a media file is: from ffprobe (audio, video) or the image's header (images)."""

    name: str
    media_type: str
    modality: str = Field(description="image, audio or video.")
    size_bytes: int
    sha256: str
    format: str | None = Field(
        default=None, description="The container or image format (`wav`, `mov,mp4,...`)."
    )
    duration_s: float | None = None
    width: int | None = Field(default=None, description="As displayed (an image's EXIF orientation applied).")
    height: int | None = None
    codec: str | None = Field(
        default=None, description="The video codec (video), else the audio codec or format."
    )
    audio_codec: str | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bit_rate: int | None = None


class Waveform(BaseModel):
    """An audio clip's loudness envelope: mono, `peaks` equal slices of the clip, each [min, max] in -1..1."""

    duration_s: float | None
    sample_rate: int
    channels: int = Field(description="The clip's channels (the peaks are of their mix).")
    points: int = Field(description="How many peaks (fewer than asked for when the clip has fewer samples).")
    peaks: list[list[float]]


class MediaLinks(BaseModel):
    """Where a media file's previews are, as paths on the dataset API (behind the gateway: `/api/dataset`)."""

    name: str
    media_type: str
    modality: str
    content: str = Field(description="The bytes (Range requests): an <img>, <audio> or <video> source.")
    info: str
    thumbnail: str | None = Field(default=None, description="Images: add `?size=16..1024`.")
    waveform: str | None = Field(default=None, description="Audio: add `?points=10..10000`.")
    poster: str | None = Field(default=None, description="Video: add `?at_s=` for another moment.")
