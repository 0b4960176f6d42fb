"""Augmentation on the real stack: a pipeline over a version of text, images, sound and video makes a new
version holding the kept records, their augmented copies and the new media files the copies name; the
task's lineage traces every output record to its source record (both ways) with the operator and seed
behind each copy, and its report counts what each operator added and skipped and why."""

from __future__ import annotations

import io
import json
import random
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile
from forge_contracts.augmentation import AugmentText
from forge_contracts.registered import ModelFiles
from forge_data_runtime.augment import TextAugmenter
from forge_data_runtime.models import Models
from forge_kit.stack_env import StackSettings
from PIL import Image

from tests.identity import as_user
from tests.services.dataset.clips import pattern_clip, sine
from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.processing.registered import register_model
from tests.services.dataset.processing.registered import with_registry as with_registry  # a fixture
from tests.services.dataset.processing.test_process_tasks import task_ended
from tests.services.dataset.processing.translators import tiny_translator
from tests.services.dataset.test_dataset_service import ACME, jsonl, object_bytes, published_version
from tests.services.registry.conftest import Registry
from tests.services.scheduler_service import project_with_quota
from tests.services.scheduler_service import scheduler as scheduler  # a fixture

TEXTS = [
    "The happy child walked quickly to the large house near the quiet river",
    "A small boat drifted slowly across the calm lake under a grey sky",
    "The old teacher read a long story to the curious students after lunch",
    "Fresh bread and warm soup waited on the wooden table for the tired workers",
]
TEXT_OP: dict[str, Any] = {"op": "augment_text", "transforms": [{"kind": "swap", "share": 0.3}]}
ARCHITECTURE = "BartForConditionalGeneration"
PIPELINE: list[dict[str, Any]] = [
    {"op": "exact_dedup", "fields": ["text"]},
    {"op": "augment_image", "copies": 2, "transforms": [{"kind": "flip"}, {"kind": "noise", "p": 0.0}]},
    {"op": "augment_audio", "keep_original": False, "transforms": [{"kind": "pitch", "semitones": [12, 12]}]},
    {"op": "augment_video", "skip": 2, "frames": [{"kind": "flip"}]},
    TEXT_OP,
]


def _png() -> bytes:
    image = Image.new("RGB", (32, 24))
    image.putdata([(x * 8, y * 10, 90) for y in range(24) for x in range(32)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _frames(data: bytes) -> int:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "v.mp4").write_bytes(data)
        done = subprocess.run(
            [
                *("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0"),
                *("-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", f"{folder}/v.mp4"),
            ],
            capture_output=True,
            check=True,
        )
    return int(done.stdout.strip())


async def test_an_augmentation_pipeline_makes_copies_with_their_media_and_lineage_to_each_source_record(
    dataset_service: DatasetService, scheduler: httpx.AsyncClient
) -> None:
    svc = dataset_service
    cat = _png()
    records = [
        {"id": 1, "text": TEXTS[0], "image": "img/cat.png"},
        {"id": 2, "text": TEXTS[0], "image": "img/cat.png"},  # an exact duplicate of 1
        {"id": 3, "text": TEXTS[1], "audio": "snd/tone.wav"},
        {"id": 4, "text": TEXTS[2], "video": "vid/clip.mp4"},
        {"id": 5, "text": TEXTS[3], "image": "notes.txt"},  # not an image: kept, not copied
    ]
    dataset_id, version_id, _ = await published_version(
        svc,
        {
            "train.jsonl": jsonl(records),
            "img/cat.png": cat,
            "snd/tone.wav": sine(440, 1.0),
            "vid/clip.mp4": pattern_clip(seconds=2, fps=10),
            "notes.txt": b"just text",
        },
    )
    project = await project_with_quota(scheduler, cpu_millis=2000)
    started = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/process",
        json={"ops": PIPELINE, "seed": 42, "project_id": project, "resources": {"cpu_cores": 2}},
        headers=ACME,
    )
    assert started.status_code == 202, started.text
    done = await task_ended(svc, dataset_id, started.json()["id"])
    assert done["state"] == "succeeded", done["error"]

    # 5 in; the duplicate and the replaced sound record dropped; 2 image, 1 sound, 1 video and 7 text copies
    assert {
        k: done["stats"][k] for k in ("records_in", "records_dropped", "records_added", "records_out")
    } == {
        "records_in": 5,
        "records_dropped": 2,
        "records_added": 11,
        "records_out": 14,
    }
    assert done["stats"]["media_files_added"] == 4
    ops = done["result"]["ops"]
    assert [(o["added"], o["skipped"]) for o in ops[1:]] == [(2, 3), (1, 5), (1, 5), (7, 0)]
    assert ops[1]["reasons"]["skipped: notes.txt is not an image file of the version"] == 1
    assert ops[1]["reasons"]["skipped: field 'image' holds no file name"] == 2
    assert ops[2]["dropped"] == 1 and ops[2]["reasons"] == {
        "replaced by its N augmented copies": 1,
        "skipped: field 'audio' holds no file name": 5,
    }

    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    files = {f["name"]: f for f in version["files"]}
    out = [
        json.loads(line)
        for line in (await object_bytes(svc, files["train.jsonl"]["object_key"])).splitlines()
    ]
    assert len(out) == 14 and files["train.jsonl"]["record_count"] == 14
    named = {r.get(k) for r in out for k in ("image", "audio", "video")} - {None}
    assert named <= set(files)  # every copy names a file of the new version
    image_copies = sorted(n for n in named if n.startswith("img/cat.aug-"))
    (sound_copy,) = [n for n in named if n.startswith("snd/tone.aug-")]
    (video_copy,) = [n for n in named if n.startswith("vid/clip.aug-")]
    assert len(image_copies) == 2 and sound_copy.endswith(".wav") and video_copy.endswith(".mp4")
    assert "snd/tone.wav" not in named  # the sound record was replaced by its copy
    flipped = np.asarray(
        Image.open(io.BytesIO(await object_bytes(svc, files[image_copies[0]]["object_key"])))
    )
    assert np.array_equal(flipped, np.asarray(Image.open(io.BytesIO(cat)))[:, ::-1])
    samples, rate = soundfile.read(io.BytesIO(await object_bytes(svc, files[sound_copy]["object_key"])))
    peak = np.fft.rfftfreq(len(samples), 1 / rate)[int(np.abs(np.fft.rfft(samples)).argmax())]
    assert rate == 16000 and abs(peak - 880) < 10  # an octave up
    assert _frames(await object_bytes(svc, files[video_copy]["object_key"])) == 10  # every second frame

    lineage = f"/datasets/{dataset_id}/tasks/{done['id']}/lineage"
    page = (await svc.http.get(lineage, params={"limit": 1000}, headers=ACME)).json()
    assert page["total"] == 14 and [e["record"] for e in page["items"]] == list(range(1, 15))
    for entry, record in zip(page["items"], out, strict=True):
        assert entry["file"] == "train.jsonl" and entry["source"]["file"] == "train.jsonl"
        assert record["id"] == entry["source"]["record"]  # every record traced to its source record
    from_one = (await svc.http.get(lineage, params={"source_record": 1}, headers=ACME)).json()
    assert from_one["total"] == 6 and {e["variant"] for e in from_one["items"]} == {
        None,
        "1",
        "2",
        "1.1",
        "2.1",
    }
    text_copy = next(e for e in page["items"] if e["variant"] == "1.1" and e["source"]["record"] == 3)
    assert [a["op"] for a in text_copy["augmentations"]] == [3, 5]
    made = TextAugmenter(AugmentText.model_validate(TEXT_OP))(
        out[text_copy["record"] - 2]["text"], random.Random(text_copy["augmentations"][-1]["seed"])
    )
    assert made == out[text_copy["record"] - 1]["text"]  # made again from its recorded seed
    copies_only = (await svc.http.get(lineage, params={"augmented": "true", "limit": 2}, headers=ACME)).json()
    assert copies_only["total"] == 11 and copies_only["next_offset"] == 2

    dropped = (await svc.http.get(f"/datasets/{dataset_id}/tasks/{done['id']}/dropped", headers=ACME)).json()
    assert [(d["record"], d["operator"]) for d in dropped["items"]] == [
        (2, "exact_dedup"),
        (3, "augment_audio"),
    ]
    assert dropped["items"][1]["reason"] == "replaced by its 1 augmented copies"

    stranger = as_user("mallory", "globex")
    assert (await svc.http.get(lineage, headers=stranger)).status_code == 404
    bad = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/process",
        json={"ops": [TEXT_OP, {"op": "near_dedup"}], "project_id": project},
        headers=ACME,
    )
    assert bad.status_code == 422 and "deduplicate before augmenting" in bad.text


async def test_back_translation_goes_through_two_models_registered_in_the_registry(
    with_registry: tuple[DatasetService, Registry],
    scheduler: httpx.AsyncClient,
    stack_settings: StackSettings,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    svc, registry = with_registry
    folders = {name: tiny_translator(tmp_path / name, seed) for name, seed in (("en-de", 1), ("de-en", 2))}
    forward = await register_model(registry, stack_settings, s3_bucket, folders["en-de"], ARCHITECTURE)
    backward = await register_model(registry, stack_settings, s3_bucket, folders["de-en"], ARCHITECTURE)
    records = [{"id": k + 1, "text": text.lower()} for k, text in enumerate(TEXTS[:2])]
    dataset_id, version_id, _ = await published_version(svc, {"train.jsonl": jsonl(records)})
    project = await project_with_quota(scheduler, cpu_millis=2000)
    op = {
        "op": "augment_text",
        "transforms": [
            {
                "kind": "back_translation",
                "forward": {"base_model_id": forward},
                "backward": {"base_model_id": backward},
                "max_new_tokens": 6,
            }
        ],
    }

    async def process(ops: list[dict[str, Any]]) -> dict[str, Any]:
        started = await svc.http.post(
            f"/datasets/{dataset_id}/versions/{version_id}/process",
            json={"ops": ops, "project_id": project},
            headers=ACME,
        )
        assert started.status_code == 202, started.text
        return await task_ended(svc, dataset_id, started.json()["id"])

    done = await process([op])
    assert done["state"] == "succeeded", done["error"]
    assert done["stats"]["records_added"] == 2
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    (records_file,) = version["files"]
    out = [json.loads(line) for line in (await object_bytes(svc, records_file["object_key"])).splitlines()]
    lineage = (await svc.http.get(f"/datasets/{dataset_id}/tasks/{done['id']}/lineage", headers=ACME)).json()
    local = {}
    for key, model_id in ((f"base_model:{forward}", "en-de"), (f"base_model:{backward}", "de-en")):
        local[key] = ModelFiles(files={p.name: f"file://{p}" for p in folders[model_id].iterdir()})
    (tmp_path / "run").mkdir()
    augmenter = TextAugmenter(AugmentText.model_validate(op), Models(local, str(tmp_path / "run")))
    for entry in lineage["items"]:
        if entry["variant"] is None:
            continue
        copy, source = out[entry["record"] - 1], records[entry["source"]["record"] - 1]
        assert copy["id"] == source["id"] and copy["text"] != source["text"]
        again = augmenter(source["text"], random.Random(entry["augmentations"][0]["seed"]))
        assert copy["text"] == again  # the registered models made it, as they do here

    unknown = dict(op, transforms=[{**op["transforms"][0], "backward": {"base_model_id": str(uuid.uuid4())}}])
    failed = await process([unknown])
    assert failed["state"] == "failed" and failed["error"].startswith("base model ")
    assert failed["output_version_id"] is None
