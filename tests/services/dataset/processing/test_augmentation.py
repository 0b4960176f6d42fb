"""Each augmentation's effect on real text, images, sound and video (pure: as the Ray tasks run them), and
an augmentation stage over a batch of rows: copies follow their source record with the seed that made
them, media copies travel in the row, and what cannot be augmented is kept and said."""

from __future__ import annotations

import io
import json
import random
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile
from forge_contracts.augmentation import (
    AudioNoise,
    AugmentImage,
    AugmentText,
    AugmentVideo,
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
from forge_contracts.processing import MediaInput, Pipeline
from forge_data_runtime import augment, stages
from forge_data_runtime.copies import AugmentStage, media_copy_name
from PIL import Image
from pydantic import ValidationError

from tests.services.dataset.clips import pattern_clip, sine

SENTENCE = "The happy child walked quickly to the large house near the quiet river"


def _text(*transforms: Any) -> AugmentText:
    return AugmentText(op="augment_text", transforms=list(transforms))


def _augment(op: AugmentText, text: str = SENTENCE, seed: int = 1) -> str:
    return augment.TextAugmenter(op)(text, random.Random(seed))


def test_synonyms_come_from_wordnet_or_the_pipelines_own_list_and_leave_stop_words_alone() -> None:
    assert {"glad", "felicitous"} <= set(augment.wordnet()["happy"])
    out = _augment(_text(Synonym(kind="synonym", share=1.0)))
    before, after = SENTENCE.split(), out.split()
    assert out != SENTENCE
    for old, new in zip(before, after, strict=False):
        if old.lower() in augment.STOP_WORDS:
            assert new == old
    replaced = [(o, n) for o, n in zip(before, after, strict=False) if o != n]
    assert replaced and all(
        n.lower() in {s.lower() for s in augment.wordnet()[o.lower()]} for o, n in replaced
    )

    own = _text(Synonym(kind="synonym", share=0.1, synonyms={"快乐": ["高兴"]}, wordnet=False))
    assert _augment(own, "我很快乐") == "我很高兴"  # Chinese cut into words; no spaces between them
    assert augment.words("我很快乐 ok") == ["我", "很", "快乐", "ok"]


def test_insertion_swap_deletion_and_typos_do_what_they_say() -> None:
    words = SENTENCE.split()
    inserted = _augment(_text(Insert(kind="insert", share=0.2))).split()
    rest = iter(inserted)
    assert all(word in rest for word in words)  # the text is still there, in order
    assert len(inserted) >= len(words) + round(0.2 * len(words))  # a synonym may be several words
    swapped = _augment(_text(Swap(kind="swap", share=0.2))).split()
    assert sorted(swapped) == sorted(words) and swapped != words
    deleted = _augment(_text(Delete(kind="delete", rate=0.3))).split()
    assert 0 < len(deleted) < len(words) and all(w in words for w in deleted)
    assert _augment(_text(Delete(kind="delete", rate=0.99)), "one") == "one"  # at least one word stays
    typos = _augment(_text(Typo(kind="typo", share=0.2))).split()
    changed = [(a, b) for a, b in zip(words, typos, strict=True) if a != b]
    assert len(changed) == round(0.2 * len(words))
    assert all(abs(len(a) - len(b)) <= 1 and a[0] == b[0] for a, b in changed)


def test_the_same_seed_makes_the_same_copy_and_p_skips_a_transform() -> None:
    op = _text(Synonym(kind="synonym"), Swap(kind="swap"), Typo(kind="typo"))
    assert _augment(op, seed=7) == _augment(op, seed=7) != _augment(op, seed=8)
    assert _augment(_text(Swap(kind="swap", p=0.0))) == SENTENCE


def _picture(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [((x * 255) // width, (y * 255) // height, 60) for y in range(height) for x in range(width)]
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_image_transforms_flip_rotate_scale_crop_colour_and_noise() -> None:
    source = _picture()
    original = _pixels(source)

    def run(*transforms: Any, seed: int = 3, name: str = "a.png") -> bytes:
        return augment.augment_image(source, name, list(transforms), seed)

    flipped = run(Flip(kind="flip"))
    assert flipped[:8] == b"\x89PNG\r\n\x1a\n" and np.array_equal(_pixels(flipped), original[:, ::-1])
    assert np.array_equal(_pixels(run(Flip(kind="flip", direction="vertical"))), original[::-1])
    rotated = _pixels(run(Rotate(kind="rotate", limit=30)))
    assert rotated.shape == original.shape and not np.array_equal(rotated, original)
    scaled = _pixels(run(Scale(kind="scale", factor=(1.5, 1.5))))
    assert scaled.shape == (72, 96, 3)
    cropped = _pixels(run(Crop(kind="crop", area=(0.3, 0.3))))
    assert cropped.shape == original.shape and not np.array_equal(cropped, original)
    coloured = _pixels(run(Color(kind="color", brightness=0.5, contrast=0, saturation=0, hue=0)))
    assert abs(coloured.mean() - original.mean()) > 3
    noisy = _pixels(run(Noise(kind="noise", std=(0.1, 0.1))))
    assert 5 < np.abs(noisy - original).mean() < 60
    assert run(Rotate(kind="rotate"), seed=9) == run(Rotate(kind="rotate"), seed=9)
    assert augment.augment_image(source, "a.jpg", [Flip(kind="flip")], 1)[:3] == b"\xff\xd8\xff"
    with pytest.raises(augment.Unusable, match="cannot be decoded"):
        augment.augment_image(b"<html>not an image</html>", "a.png", [Flip(kind="flip")], 1)


def _peak_hz(wav: bytes) -> float:
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


def test_audio_pitch_speed_and_noise_change_the_sound_as_asked() -> None:
    tone = sine(440, 1.0)
    assert abs(_peak_hz(tone) - 440) < 3
    higher = augment.augment_audio(tone, "t.wav", [Pitch(kind="pitch", semitones=(12, 12))], 1)
    assert abs(_peak_hz(higher) - 880) < 10
    faster, rate = soundfile.read(
        io.BytesIO(augment.augment_audio(tone, "t.wav", [Speed(kind="speed", rate=(2.0, 2.0))], 1))
    )
    assert rate == 16000 and abs(len(faster) - 8000) < 400 and abs(_peak_hz(tone) - 440) < 3
    noisy, _ = soundfile.read(
        io.BytesIO(augment.augment_audio(tone, "t.wav", [AudioNoise(kind="noise", snr_db=(10, 10))], 1))
    )
    clean, _ = soundfile.read(io.BytesIO(tone))
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert 8 < snr < 12


def _probe(data: bytes) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as file:
        file.write(data)
        file.flush()
        done = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-print_format", "json", "-show_streams", file.name],
            capture_output=True,
            check=True,
        )
    return {s["codec_type"]: s for s in json.loads(done.stdout)["streams"]}


def _first_frame(data: bytes) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "v.mp4").write_bytes(data)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", f"{folder}/v.mp4", "-frames:v", "1", f"{folder}/f.png"],
            check=True,
        )
        return np.asarray(Image.open(f"{folder}/f.png").convert("RGB"), dtype=np.int16)


def test_video_frames_are_transformed_alike_skipped_repeated_and_the_audio_track_augmented() -> None:
    clip = pattern_clip(seconds=2, fps=10, audio=True)
    source = _probe(clip)
    assert int(source["video"]["nb_read_frames"]) == 20
    op = AugmentVideo(
        op="augment_video",
        frames=[Flip(kind="flip")],
        skip=2,
        audio=[Pitch(kind="pitch", semitones=(5, 5))],
    )
    out = augment.augment_video(clip, "v.mp4", op, 4)
    streams = _probe(out)
    assert int(streams["video"]["nb_read_frames"]) == 10 and streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == "aac"
    flipped = _first_frame(out)
    assert np.abs(flipped - _first_frame(clip)[:, ::-1]).mean() < np.abs(flipped - _first_frame(clip)).mean()
    assert abs(float(streams["audio"]["duration"]) - 1.0) < 0.1  # the sound keeps pace with the frames
    repeated = _probe(augment.augment_video(clip, "v.mp4", AugmentVideo(op="augment_video", repeat=2), 4))
    assert int(repeated["video"]["nb_read_frames"]) == 40
    assert abs(float(repeated["audio"]["duration"]) - 4.0) < 0.1


def _rows(records: list[dict[str, Any]]) -> stages.Batch:
    return stages.rows([7 << 32 | k for k in range(len(records))], [orjson.dumps(r) for r in records])


def test_a_stage_follows_each_record_with_its_copies_and_their_seeds() -> None:
    op = AugmentText(op="augment_text", copies=2, transforms=[Swap(kind="swap", share=0.5)])
    batch = _rows([{"text": SENTENCE, "id": 1}, {"id": 2}])
    out = AugmentStage(op, 3, 11, {})(batch)
    assert out["_rid"].tolist() == [7 << 32, 7 << 32, 7 << 32, 7 << 32 | 1]
    assert out["_copy"].tolist() == ["", "1", "2", ""]
    records = [orjson.loads(r) for r in out["_json"]]
    assert records[0]["text"] == SENTENCE and {records[1]["text"], records[2]["text"]} != {SENTENCE}
    assert all(r["id"] == 1 for r in records[:3])
    chains = [orjson.loads(a) if a else [] for a in out["_aug"]]
    assert [c[0]["op"] for c in chains[1:3]] == [4, 4] and chains[1][0]["seed"] != chains[2][0]["seed"]
    copy = augment.TextAugmenter(op)(SENTENCE, random.Random(chains[1][0]["seed"]))
    assert copy == records[1]["text"]  # made again from its recorded seed
    assert orjson.loads(out["_notes"][3]) == [{"op": 3, "skipped": "field 'text' holds no text"}]

    replacing = AugmentText(op="augment_text", keep_original=False, transforms=[Swap(kind="swap")])
    again = AugmentStage(replacing, 0, 11, {})(_rows([{"text": SENTENCE}]))
    assert again["_drop"].tolist() == [0, -1] and again["_why"][0] == "replaced by its 1 augmented copies"

    chained = AugmentStage(op, 4, 11, {})(out)
    assert chained["_copy"].tolist()[:3] == ["", "1", "2"] and "1.2" in chained["_copy"].tolist()


def test_media_copies_travel_in_the_row_under_names_of_their_own() -> None:
    picture = _picture()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "cat.png").write_bytes(picture)
        media = {
            "img/cat.png": MediaInput(url=f"file://{folder}/cat.png", media_type="image/png", size_bytes=1),
            "notes.txt": MediaInput(url=f"file://{folder}/cat.png", media_type="text/plain", size_bytes=1),
        }
        op = AugmentImage(op="augment_image", copies=2, transforms=[Flip(kind="flip")])
        out = AugmentStage(op, 0, 5, media)(
            _rows([{"image": "img/cat.png", "label": "cat"}, {"image": "notes.txt"}, {"image": "gone.png"}])
        )
    copies = [orjson.loads(r) for r in out["_json"][1:3]]
    names = [c["image"] for c in copies]
    assert names == [media_copy_name("img/cat.png", 7 << 32, str(k), ".png") for k in (1, 2)]
    assert all(n.startswith("img/cat.aug-") and n.endswith(".png") for n in names) and len(set(names)) == 2
    assert all(c["label"] == "cat" for c in copies)
    files = stages.unpack_media(out["_media"][1])
    assert list(files) == [names[0]] and np.array_equal(_pixels(files[names[0]]), _pixels(picture)[:, ::-1])
    skipped = [orjson.loads(n)[0]["skipped"] for n in out["_notes"][3:]]
    assert skipped == [
        "notes.txt is not an image file of the version",
        "gone.png is not an image file of the version",
    ]


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "augment_text", "transforms": []}],
        [{"op": "augment_text", "transforms": [{"kind": "shout"}]}],
        [{"op": "augment_image", "transforms": [{"kind": "crop", "area": [0.9, 0.2]}]}],
        [{"op": "augment_audio", "transforms": [{"kind": "pitch", "semitones": [-30, 0]}]}],
        [{"op": "augment_video"}],
        [{"op": "augment_text", "transforms": [{"kind": "swap"}]}, {"op": "exact_dedup"}],
    ],
)
def test_bad_augmentations_are_refused_by_their_declaration(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        Pipeline.model_validate({"ops": ops})


def test_back_translation_goes_through_both_models_and_is_made_again_from_its_seed(tmp_path: Path) -> None:
    from forge_contracts.augmentation import BackTranslate
    from forge_contracts.registered import ModelFiles, RegisteredModel
    from forge_data_runtime.models import Models

    from tests.services.dataset.processing.translators import tiny_translator

    forward, backward = (
        RegisteredModel(base_model_id=str(uuid.uuid4())),
        RegisteredModel(base_model_id=str(uuid.uuid4())),
    )
    files = {}
    for model, seed in ((forward, 1), (backward, 2)):
        folder = tiny_translator(tmp_path / str(seed), seed)
        files[model.key] = ModelFiles(files={p.name: f"file://{p}" for p in folder.iterdir()})
    op = _text(BackTranslate(kind="back_translation", forward=forward, backward=backward, max_new_tokens=6))
    (tmp_path / "run").mkdir()
    models = Models(files, str(tmp_path / "run"))
    first = augment.TextAugmenter(op, models)(SENTENCE, random.Random(5))
    assert first != SENTENCE and 0 < len(first.split()) <= 6
    assert (
        augment.TextAugmenter(op, Models(files, str(tmp_path / "run")))(SENTENCE, random.Random(5)) == first
    )
    there = models.translator(forward)(
        SENTENCE.lower(), max_new_tokens=6, sample=False, temperature=1.0, seed=0
    )
    assert first == models.translator(backward)(
        there, max_new_tokens=6, sample=False, temperature=1.0, seed=0
    )
    assert len(list((tmp_path / "run" / "models").iterdir())) == 4  # two copies and their locks, made once
    with pytest.raises(augment.Unusable):
        augment.TextAugmenter(op)(SENTENCE, random.Random(5))
