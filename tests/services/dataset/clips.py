"""Media files for tests, made by ffmpeg from its lavfi test sources (tiny, deterministic)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def ffmpeg_clip(*source: str, suffix: str) -> bytes:
    """The file ffmpeg writes from `source` (input and output options) with `suffix`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"clip{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", *source, str(out)], check=True, timeout=60)
        return out.read_bytes()


def sine(frequency: int = 440, seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A mono WAV of a sine."""
    return ffmpeg_clip(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={frequency}:duration={seconds}:sample_rate={rate}",
        suffix=".wav",
    )


def pattern_clip(seconds: int = 2, fps: int = 10, audio: bool = False) -> bytes:
    """A 160x120 test pattern as H.264 MP4, with a 440 Hz AAC track if `audio`."""
    inputs = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate={fps}:duration={seconds}"]
    if audio:
        inputs += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}:sample_rate=16000",
            "-c:a",
            "aac",
        ]
    return ffmpeg_clip(
        *inputs,
        *["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-shortest"],
        suffix=".mp4",
    )
