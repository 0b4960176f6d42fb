"""Augmentation operators (DP-2) of a processing pipeline: each makes `copies` augmented copies of every
record it sees (text, or the image, audio or video file a field names), keeps the original unless told
not to, and records per copy the seed it drew from, so a copy is made again from the task's record and
traced back to its source record through the task's lineage.

- `augment_text`: synonym replacement (WordNet, or the pipeline's own synonyms), random insertion,
  swap and deletion, typos, back-translation through two translation models of the registry;
- `augment_image`: rotation, noise, scaling, cropping, flipping, colour jitter (albumentations);
- `augment_audio`: pitch shift, speed change, added noise (audiomentations), written as WAV;
- `augment_video`: per-frame image transforms (the same for every frame of a copy), frame skipping and
  repetition, the audio track's transforms; written as MP4 (H.264, AAC).

Every transform has a probability `p` of being applied to a copy (1: always). Media copies are new files
of the output version, named after their source (`img/cat.png` -> `img/cat.aug-<id>.png`), and the copy's
record names its own file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from forge_contracts.registered import RegisteredModel

FieldName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Word = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def _within(low: float, high: float) -> AfterValidator:
    def check(pair: tuple[float, float]) -> tuple[float, float]:
        if not low <= pair[0] <= pair[1] <= high:
            raise ValueError(f"must be [min, max] with {low} <= min <= max <= {high}")
        return pair

    return AfterValidator(check)


Share = Annotated[tuple[float, float], _within(0.0, 1.0)]
Area = Annotated[tuple[float, float], _within(0.01, 1.0)]
Factor = Annotated[tuple[float, float], _within(0.1, 10.0)]
Semitones = Annotated[tuple[float, float], _within(-12.0, 12.0)]
Rate = Annotated[tuple[float, float], _within(0.25, 4.0)]
Decibels = Annotated[tuple[float, float], _within(-20.0, 100.0)]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- text -------------------------------------------------------------------------------------------------


class Synonym(_Part):
    """Replace `share` of the words (at least one) by a synonym: from `synonyms` first (any language),
    then from WordNet (English) when `wordnet`. Stop words are left alone."""

    kind: Literal["synonym"]
    share: float = Field(default=0.1, gt=0, le=1)
    synonyms: dict[Word, list[Word]] = Field(default_factory=dict, max_length=100_000)
    wordnet: bool = True
    p: Probability = 1.0


class Insert(_Part):
    """Insert a synonym of a random word at a random place, `share` x words times (EDA's random
    insertion)."""

    kind: Literal["insert"]
    share: float = Field(default=0.1, gt=0, le=1)
    synonyms: dict[Word, list[Word]] = Field(default_factory=dict, max_length=100_000)
    wordnet: bool = True
    p: Probability = 1.0


class Swap(_Part):
    """Swap two random words, `share` x words times."""

    kind: Literal["swap"]
    share: float = Field(default=0.1, gt=0, le=1)
    p: Probability = 1.0


class Delete(_Part):
    """Delete each word with probability `rate` (a text keeps at least one word)."""

    kind: Literal["delete"]
    rate: float = Field(default=0.1, gt=0, lt=1)
    p: Probability = 1.0


class Typo(_Part):
    """Put a typo into `share` of the words of three letters or more: a key's neighbour on a QWERTY
    keyboard, two letters swapped, a letter dropped or doubled."""

    kind: Literal["typo"]
    share: float = Field(default=0.05, gt=0, le=1)
    p: Probability = 1.0


class BackTranslate(_Part):
    """Translate the text with `forward` (a sequence-to-sequence model of the registry, e.g. English to
    German) and back with `backward`: a paraphrase. Greedy decoding, or sampling at `temperature` seeded
    per copy."""

    kind: Literal["back_translation"]
    forward: RegisteredModel
    backward: RegisteredModel
    max_new_tokens: int = Field(default=256, ge=1, le=4096)
    sample: bool = False
    temperature: float = Field(default=1.0, gt=0, le=5)
    p: Probability = 1.0


TextTransform = Annotated[
    Synonym | Insert | Swap | Delete | Typo | BackTranslate, Field(discriminator="kind")
]


class AugmentText(_Part):
    """Copies of each record with `field`'s text changed by `transforms`, in order. Text is cut into
    words at white space, and runs of Chinese, Japanese or Korean characters into words by jieba's
    dictionary; a copy's words are joined by single spaces (none between CJK words)."""

    op: Literal["augment_text"]
    field: FieldName = "text"
    copies: int = Field(default=1, ge=1, le=50)
    keep_original: bool = True
    transforms: list[TextTransform] = Field(min_length=1, max_length=20)


# ---- images -----------------------------------------------------------------------------------------------


class Rotate(_Part):
    kind: Literal["rotate"]
    limit: float = Field(default=15.0, gt=0, le=180, description="Degrees either way.")
    p: Probability = 1.0


class Noise(_Part):
    kind: Literal["noise"]
    std: Share = Field(default=(0.02, 0.08), description="Gaussian noise, share of full scale.")
    p: Probability = 1.0


class Scale(_Part):
    """Resize by a factor drawn from `factor` (the image's size changes)."""

    kind: Literal["scale"]
    factor: Factor = (0.8, 1.2)
    p: Probability = 1.0


class Crop(_Part):
    """Crop a random part holding `area` of the image (aspect ratio 3:4 to 4:3), resized back to the
    image's size."""

    kind: Literal["crop"]
    area: Area = (0.6, 1.0)
    p: Probability = 1.0


class Flip(_Part):
    kind: Literal["flip"]
    direction: Literal["horizontal", "vertical"] = "horizontal"
    p: Probability = 1.0


class Color(_Part):
    """Colour jitter: brightness, contrast and saturation by up to the given share, hue by up to `hue`
    of the colour circle."""

    kind: Literal["color"]
    brightness: float = Field(default=0.2, ge=0, le=1)
    contrast: float = Field(default=0.2, ge=0, le=1)
    saturation: float = Field(default=0.2, ge=0, le=1)
    hue: float = Field(default=0.05, ge=0, le=0.5)
    p: Probability = 1.0


ImageTransform = Annotated[Rotate | Noise | Scale | Crop | Flip | Color, Field(discriminator="kind")]


class AugmentImage(_Part):
    """Copies of each record whose `field` names an image file of the version, with a transformed copy
    of the image (same format)."""

    op: Literal["augment_image"]
    field: FieldName = "image"
    copies: int = Field(default=1, ge=1, le=50)
    keep_original: bool = True
    transforms: list[ImageTransform] = Field(min_length=1, max_length=20)


# ---- audio ------------------------------------------------------------------------------------------------


class Pitch(_Part):
    kind: Literal["pitch"]
    semitones: Semitones = (-2.0, 2.0)
    p: Probability = 1.0


class Speed(_Part):
    """Play faster or slower by a rate drawn from `rate`, the pitch kept (the length changes)."""

    kind: Literal["speed"]
    rate: Rate = (0.9, 1.1)
    p: Probability = 1.0


class AudioNoise(_Part):
    """Gaussian noise at a signal-to-noise ratio drawn from `snr_db`."""

    kind: Literal["noise"]
    snr_db: Decibels = (15.0, 30.0)
    p: Probability = 1.0


AudioTransform = Annotated[Pitch | Speed | AudioNoise, Field(discriminator="kind")]


class AugmentAudio(_Part):
    """Copies of each record whose `field` names an audio file of the version, with a transformed copy
    of the sound (written as 16-bit WAV at the source's sample rate)."""

    op: Literal["augment_audio"]
    field: FieldName = "audio"
    copies: int = Field(default=1, ge=1, le=50)
    keep_original: bool = True
    transforms: list[AudioTransform] = Field(min_length=1, max_length=20)


# ---- video ------------------------------------------------------------------------------------------------


class AugmentVideo(_Part):
    """Copies of each record whose `field` names a video file of the version: `frames` transforms drawn
    once per copy and applied to every frame alike; every `skip`-th frame kept and each kept frame shown
    `repeat` times (at the source's frame rate); the audio track (if any) through `audio`, and played
    `skip / repeat` times as fast (pitch kept) so that it stays with the frames."""

    op: Literal["augment_video"]
    field: FieldName = "video"
    copies: int = Field(default=1, ge=1, le=20)
    keep_original: bool = True
    frames: list[ImageTransform] = Field(default_factory=list, max_length=20)
    skip: int = Field(default=1, ge=1, le=100, description="Keep every n-th frame.")
    repeat: int = Field(default=1, ge=1, le=100, description="Show each kept frame n times.")
    audio: list[AudioTransform] = Field(default_factory=list, max_length=20)
    max_frames: int = Field(default=10_000, ge=1, le=1_000_000, description="Frames read from a source.")

    @model_validator(mode="after")
    def _changes_something(self) -> AugmentVideo:
        if not self.frames and not self.audio and self.skip == 1 and self.repeat == 1:
            raise ValueError("give frames or audio transforms, or a skip or repeat above 1")
        return self


MEDIA_OPS = {"augment_image": "image", "augment_audio": "audio", "augment_video": "video"}
"""Augmentation operators that read a media file, with the modality they read."""
AUGMENT_OPS = frozenset({"augment_text", *MEDIA_OPS})


def models_named(ops: list[BaseModel]) -> list[RegisteredModel]:
    """The registry's models the operators read, each once, in order."""
    found: dict[str, RegisteredModel] = {}
    for op in ops:
        for transform in getattr(op, "transforms", []):
            if isinstance(transform, BackTranslate):
                for model in (transform.forward, transform.backward):
                    found.setdefault(model.key, model)
    return list(found.values())


__all__ = [
    "AUGMENT_OPS",
    "MEDIA_OPS",
    "AudioNoise",
    "AudioTransform",
    "AugmentAudio",
    "AugmentImage",
    "AugmentText",
    "AugmentVideo",
    "BackTranslate",
    "Color",
    "Crop",
    "Delete",
    "Flip",
    "ImageTransform",
    "Insert",
    "Noise",
    "Pitch",
    "Rotate",
    "Scale",
    "Speed",
    "Swap",
    "Synonym",
    "TextTransform",
    "Typo",
    "models_named",
]
