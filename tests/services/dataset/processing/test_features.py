"""Feature engineering on the real stack: a transformer (TF-IDF, numeric and one-hot extraction, min-max
scaling, chi2 k-best selection) is fitted on one version under the scheduler's quota, stored as an
artifact, and applied unchanged to a version of another dataset; the steps' effects are checked on the
records. Image embeddings come from an image encoder registered in the registry. Refusals come before
anything runs; another tenant's transformer is a 404."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from forge_contracts.features import TransformerSpec
from forge_data_runtime.augment import decode_image
from forge_data_runtime.features import _frame, build, summary
from forge_data_runtime.models import ImageEncoder
from forge_kit.stack_env import StackSettings

from tests.identity import as_user
from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.processing.registered import register_model
from tests.services.dataset.processing.registered import with_registry as with_registry  # a fixture
from tests.services.dataset.processing.test_process_tasks import released, task_ended
from tests.services.dataset.processing.translators import tiny_image_encoder
from tests.services.dataset.test_dataset_service import ACME, jsonl, object_bytes, published_version
from tests.services.dataset.test_file_kinds import png
from tests.services.registry.conftest import Registry
from tests.services.scheduler_service import project_with_quota
from tests.services.scheduler_service import scheduler as scheduler  # a fixture

POSITIVE = ["great product works well", "really great value", "works perfectly great quality", "love it"]
NEGATIVE = ["broken on arrival", "terrible support broken", "refund please terrible", "awful and broken"]


def _records(n: int, offset: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        positive = i % 2 == 0
        texts = POSITIVE if positive else NEGATIVE
        out.append(
            {
                "id": offset + i,
                "text": texts[(i // 2) % len(texts)],
                "label": "pos" if positive else "neg",
                "score": float(i % 7),
                "city": ["paris", "lyon", "nice"][i % 3],
            }
        )
    return out


FIT: dict[str, Any] = {
    "extract": [
        {"step": "tfidf", "field": "text", "max_features": 30},
        {"step": "numeric", "fields": ["score"]},
        {"step": "one_hot", "fields": ["city"]},
    ],
    "refine": [{"step": "scale", "method": "minmax"}, {"step": "k_best", "k": 8, "score": "chi2"}],
    "label": "label",
}


def test_a_fitted_transformer_extracts_scales_and_selects_features() -> None:
    spec = TransformerSpec.model_validate(FIT)
    records = _records(60)
    frame = _frame(records, spec)
    labels = np.asarray([r["label"] for r in records])
    fitted = build(spec).fit(frame, labels)
    vectors = fitted.transform(frame)
    assert vectors.shape == (60, 8)
    assert float(vectors.min()) >= 0 and float(vectors.max()) <= 1  # min-max scaled before selection
    described = summary(fitted, 8)
    assert described["steps"][0] == {"step": "tfidf", "vocabulary": 19}
    assert described["steps"][2] == {"step": "one_hot", "categories": [3]}
    assert described["steps"][4] == {"step": "k_best", "kept": 8}
    kept = set(described["feature_names"])
    assert {"0_tfidf__broken", "0_tfidf__great"} <= kept  # the words that tell the labels apart
    unseen = _frame([{"text": "never seen words", "score": None, "city": "rome"}], spec)
    assert fitted.transform(unseen).shape == (1, 8)  # unseen words and categories: no error


async def _features(
    svc: DatasetService, dataset_id: str, version_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/features", json=body, headers=ACME
    )


async def _records_of(
    svc: DatasetService, dataset_id: str, version_id: str, name: str
) -> list[dict[str, Any]]:
    version = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)).json()
    (file,) = [f for f in version["files"] if f["name"] == name]
    return [json.loads(line) for line in (await object_bytes(svc, file["object_key"])).splitlines()]


async def test_a_transformer_is_fitted_on_one_version_and_applied_unchanged_to_another(
    dataset_service: DatasetService, scheduler: httpx.AsyncClient
) -> None:
    svc = dataset_service
    train_id, train_version, _ = await published_version(svc, {"train.jsonl": jsonl(_records(60))})
    test_records = [*_records(10, offset=100), {"id": 999, "text": "great", "score": 3, "city": "rome"}]
    test_id, test_version, _ = await published_version(svc, {"test.jsonl": jsonl(test_records)})
    project = await project_with_quota(scheduler, cpu_millis=2000)

    started = await _features(svc, train_id, train_version, {"fit": FIT, "project_id": project})
    assert started.status_code == 202, started.text
    fitted = await task_ended(svc, train_id, started.json()["id"])
    assert fitted["state"] == "succeeded", fitted["error"]
    await released(scheduler, fitted["id"])
    transformer_id = fitted["result"]["transformer_id"]
    assert fitted["result"]["fitted"] is True and fitted["stats"] == {"records": 60, "dimensions": 8}

    listed = (await svc.http.get(f"/datasets/{train_id}/transformers", headers=ACME)).json()
    assert [t["id"] for t in listed] == [transformer_id]
    (transformer,) = listed
    assert transformer["fitted_on_version_id"] == train_version and transformer["dimensions"] == 8
    assert transformer["summary"]["fitted_records"] == 60 and len(transformer["sha256"]) == 64
    train_out = await _records_of(svc, train_id, fitted["output_version_id"], "train.jsonl")
    assert [r["id"] for r in train_out] == list(range(60)) and all(len(r["features"]) == 8 for r in train_out)
    version = (
        await svc.http.get(f"/datasets/{train_id}/versions/{fitted['output_version_id']}", headers=ACME)
    ).json()
    assert (version["parent_version_id"], version["operation"]) == (train_version, "features")

    applied = await _features(
        svc, test_id, test_version, {"transformer_id": transformer_id, "project_id": project}
    )
    assert applied.status_code == 202, applied.text
    done = await task_ended(svc, test_id, applied.json()["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["result"] == {
        "transformer_id": transformer_id,
        "fitted": False,
        "files": [{"source": "test.jsonl", "output": "test.jsonl", "records": 11}],
    }
    test_out = await _records_of(svc, test_id, done["output_version_id"], "test.jsonl")
    by_text_city_score = {(r["text"], r["city"], r["score"]): r["features"] for r in train_out}
    for record in test_out[:10]:  # the same inputs give the same vector: applied unchanged
        assert record["features"] == by_text_city_score[(record["text"], record["city"], record["score"])]
    assert len(test_out[10]["features"]) == 8  # unseen city and words
    assert (await svc.http.get(f"/datasets/{test_id}/transformers", headers=ACME)).json() == []

    stranger = as_user("mallory", "globex")
    foreign = await svc.http.get(f"/datasets/{train_id}/transformers/{transformer_id}", headers=stranger)
    assert foreign.status_code == 404


async def test_bad_feature_requests_are_refused_before_anything_runs(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id, version_id, _ = await published_version(svc, {"train.jsonl": jsonl(_records(6))})
    project = "0193a1a0-0000-7000-8000-000000000001"
    cases = {
        "both": {"fit": FIT, "transformer_id": project},
        "neither": {},
        "unknown step": {"fit": {"extract": [{"step": "bert"}]}},
        "k_best without label": {"fit": {**FIT, "label": None}},
        "missing field": {"fit": {"extract": [{"step": "tfidf", "field": "body"}]}},
        "unknown transformer": {"transformer_id": "0193a1a0-0000-7000-8000-0000000000ff"},
    }
    for case, body in cases.items():
        answer = await _features(svc, dataset_id, version_id, {**body, "project_id": project})
        assert answer.status_code in (404, 422), (case, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), case
    assert (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json() == []


async def test_image_embeddings_come_from_an_image_encoder_registered_in_the_registry(
    with_registry: tuple[DatasetService, Registry],
    scheduler: httpx.AsyncClient,
    stack_settings: StackSettings,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    svc, registry = with_registry
    folder = tiny_image_encoder(tmp_path / "vit", 3)
    model_id = await register_model(registry, stack_settings, s3_bucket, folder, "ViTModel")
    red, blue = png(32, 32, (220, 20, 20)), png(32, 32, (20, 20, 220))
    records = [
        {"id": 1, "image": "img/red.png", "n": 1.0},
        {"id": 2, "image": "img/blue.png", "n": 2.0},
        {"id": 3, "image": "img/red.png", "n": 3.0},
        {"id": 4, "n": 4.0},  # no image: zeros
    ]
    train_id, train_version, _ = await published_version(
        svc, {"train.jsonl": jsonl(records), "img/red.png": red, "img/blue.png": blue}
    )
    project = await project_with_quota(scheduler, cpu_millis=2000)
    fit = {
        "extract": [
            {"step": "image_embedding", "field": "image", "model": {"base_model_id": model_id}},
            {"step": "numeric", "fields": ["n"]},
        ]
    }
    started = await _features(svc, train_id, train_version, {"fit": fit, "project_id": project})
    assert started.status_code == 202, started.text
    fitted = await task_ended(svc, train_id, started.json()["id"])
    assert fitted["state"] == "succeeded", fitted["error"]
    assert fitted["stats"]["dimensions"] == 17  # the encoder's 16, then n
    out = await _records_of(svc, train_id, fitted["output_version_id"], "train.jsonl")
    vectors = [np.asarray(r["features"]) for r in out]
    encoder = ImageEncoder(folder)
    for record, vector in zip(records, vectors, strict=True):
        expected = (
            encoder([decode_image(red if "red" in record["image"] else blue)])[0]
            if "image" in record
            else np.zeros(16)
        )
        assert np.allclose(vector[:16], expected, atol=1e-6) and vector[16] == record["n"]
    assert not np.allclose(vectors[0][:16], vectors[1][:16])  # red and blue differ

    other_id, other_version, _ = await published_version(
        svc, {"test.jsonl": jsonl([{"id": 9, "image": "blue.png", "n": 0.0}]), "blue.png": blue}
    )
    applied = await _features(
        svc,
        other_id,
        other_version,
        {"transformer_id": fitted["result"]["transformer_id"], "project_id": project},
    )
    assert applied.status_code == 202, applied.text
    done = await task_ended(svc, other_id, applied.json()["id"])
    assert done["state"] == "succeeded", done["error"]
    (again,) = await _records_of(svc, other_id, done["output_version_id"], "test.jsonl")
    assert np.allclose(again["features"][:16], vectors[1][:16], atol=1e-6)  # the same model, run again
