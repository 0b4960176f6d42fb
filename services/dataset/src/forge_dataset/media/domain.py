"""What media previews are made of, without I/O: byte ranges, waveform peaks, poster times, cache keys."""

from __future__ import annotations

import array
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from forge_kit.errors import ForgeError

THUMBNAIL_SIZES = (16, 1024)
DEFAULT_THUMBNAIL_SIZE = 256
WAVEFORM_POINTS = (10, 10000)
DEFAULT_WAVEFORM_POINTS = 1000
MAX_IMAGE_PIXELS = 64_000_000
"""The largest image (width x height) decoded for a thumbnail; a larger one is refused (a
decompression bomb guard, below Pillow's own)."""
MAX_DECODE_BYTES = 2 * 1024**3
"""The largest file copied to local disk to be decoded (a thumbnail, waveform, poster or info)."""
DECODE_TIMEOUT_S = 120.0
"""The longest ffmpeg or ffprobe may run for one preview."""
POSTER_FRACTION = 0.1
POSTER_CAP_S = 60.0
"""A poster frame is taken 10% into the clip, but never later than this."""
MODALITIES = ("image", "audio", "video")


class RangeNotSatisfiable(ForgeError):
    """A `Range` that selects no byte of the file (416, with the file's size in `Content-Range`)."""

    status = 416
    title = "Range not satisfiable"

    def __init__(self, detail: str, size_bytes: int) -> None:
        super().__init__(detail)
        self.headers: Mapping[str, str] = {"Content-Range": f"bytes */{size_bytes}"}


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Inclusive, as in HTTP."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size_bytes: int) -> str:
        return f"bytes {self.start}-{self.end}/{size_bytes}"


_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


def requested_range(header: str | None, size_bytes: int) -> ByteRange | None:
    """The one range a `Range` header asks for (`bytes=a-b`, `a-` or `-n`), clamped to the file; None for
    the whole file: no header, or one this server ignores as RFC 9110 allows (another unit, several
    ranges, a malformed one). A well-formed range past the end raises RangeNotSatisfiable."""
    if header is None:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # a suffix: the last n bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable("an empty suffix range selects no byte", size_bytes)
        return ByteRange(max(0, size_bytes - n), size_bytes - 1)
    start = int(first)
    end = int(last) if last else size_bytes - 1
    if last and end < start:
        return None  # invalid: ignored, the whole file is sent
    if start >= size_bytes:
        raise RangeNotSatisfiable(
            f"the range starts at {start}, past the file's {size_bytes} bytes", size_bytes
        )
    return ByteRange(start, min(end, size_bytes - 1))


def modality_of(media_type: str) -> str | None:
    """image, audio or video from a file's media type; None for anything else."""
    major = media_type.split("/", 1)[0]
    return major if major in MODALITIES else None


def preview_key(tenant: str, sha256: str, artefact: str) -> str:
    """Where a preview made from the bytes with `sha256` is cached: content-addressed per tenant (the
    file owner's), so the same bytes under any name or version are decoded once."""
    return f"tenants/{tenant}/previews/sha256/{sha256[:2]}/{sha256}/{artefact}"


def poster_time_s(duration_s: float | None) -> float:
    """When a poster frame is taken by default: 10% into the clip, capped (0 for an unknown length)."""
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        return 0.0
    return round(min(duration_s * POSTER_FRACTION, POSTER_CAP_S), 3)


@dataclass
class Peaks:
    """Min/max of mono 16-bit PCM in `points` equal buckets of `total_samples` samples, fed in chunks:
    memory is the buckets and one chunk, whatever the clip's length. Samples past `total_samples` (an
    estimate from the container) fall in the last bucket; buckets never reached are left out."""

    total_samples: int
    points: int
    mins: list[int] = field(default_factory=list)
    maxs: list[int] = field(default_factory=list)
    seen: int = 0
    _odd: bytes = b""

    def __post_init__(self) -> None:
        self.total_samples = max(1, self.total_samples)
        self.points = max(1, min(self.points, self.total_samples))

    def _bucket(self, sample: int) -> int:
        return min(sample * self.points // self.total_samples, self.points - 1)

    def _start(self, bucket: int) -> int:
        """The first sample of `bucket`."""
        return -(-bucket * self.total_samples // self.points)

    def feed(self, pcm: bytes) -> None:
        pcm = self._odd + pcm
        usable = len(pcm) - len(pcm) % 2
        self._odd = pcm[usable:]
        samples = array.array("h")
        samples.frombytes(pcm[:usable])
        if sys.byteorder == "big":
            samples.byteswap()  # s16le
        offset = 0
        while offset < len(samples):
            bucket = self._bucket(self.seen)
            end = len(samples) if bucket == self.points - 1 else self._start(bucket + 1) - self.seen
            piece = samples[offset : offset + max(1, end)]
            low, high = min(piece), max(piece)
            if bucket < len(self.mins):
                self.mins[bucket] = min(self.mins[bucket], low)
                self.maxs[bucket] = max(self.maxs[bucket], high)
            else:
                self.mins.append(low)
                self.maxs.append(high)
            offset += len(piece)
            self.seen += len(piece)

    def normalised(self) -> list[list[float]]:
        """[[min, max], ...] scaled to -1..1."""
        return [
            [round(lo / 32768, 4), round(hi / 32767, 4)] for lo, hi in zip(self.mins, self.maxs, strict=True)
        ]
