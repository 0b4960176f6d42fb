"""Per-version statistics (DS-2) on the real stack: counts, sizes, field coverage, types, string lengths
and the label distribution, collected while files are scanned (uploads and derived versions alike), and
computed once for files uploaded before statistics existed."""

from __future__ import annotations

import uuid
from typing import Any

from forge_dataset.tables import VersionFile
from sqlmodel import select

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import (
    ACME,
    GLOBEX,
    create_dataset,
    create_version,
    jsonl,
    upload,
)
from tests.services.dataset.test_splits import split_done


async def _version(svc: DatasetService, files: dict[str, bytes]) -> tuple[str, str]:
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    for name, data in files.items():
        assert (await upload(svc, dataset_id, version_id, name, data)).status_code == 200
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert published.status_code == 200, published.text
    return dataset_id, version_id


TRAIN = [
    {
        "text": "x" * (i % 7 + 1),
        "label": ["spam", "ham", "ham"][i % 3],
        "id": i,
        **({"lang": "en"} if i < 10 else {}),
    }
    for i in range(300)
]
EXTRA = [{"text": "yy", "label": "spam", "id": 1000 + i, "score": 0.5, "tags": ["a"]} for i in range(100)]


async def test_a_version_has_counts_coverage_and_its_label_distribution(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    train, extra = jsonl(TRAIN), jsonl(EXTRA)
    dataset_id, version_id = await _version(svc, {"train.jsonl": train, "extra.jsonl": extra})

    response = await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/stats", headers=ACME)

    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["records"], stats["size_bytes"], stats["file_count"]) == (400, len(train) + len(extra), 2)
    label = stats["fields"]["label"]
    assert label["present"] == 400 and label["missing"] == 0 and label["distinct_values"] == 2
    assert label["values"] == [
        {"value": "ham", "count": 200, "share": 0.5},
        {"value": "spam", "count": 200, "share": 0.5},
    ]
    assert stats["fields"]["lang"]["missing"] == 390
    assert stats["fields"]["id"]["distinct_values"] is None  # 400 ids: not a label
    assert stats["fields"]["id"]["types"] == {"integer": 400}
    assert stats["fields"]["text"]["length"] == {
        "min": 1,
        "max": 7,
        "mean": round((sum(i % 7 + 1 for i in range(300)) + 200) / 400, 3),
    }
    assert (
        stats["fields"]["tags"]["types"] == {"array": 100}
        and stats["fields"]["tags"]["distinct_values"] is None
    )
    by_name = {f["name"]: f for f in stats["files"]}
    assert by_name["train.jsonl"]["fields"]["label"]["values"][0] == {
        "value": "ham",
        "count": 200,
        "share": 0.666667,
    }
    assert by_name["extra.jsonl"]["records"] == 100
    top = await svc.http.get(
        f"/datasets/{dataset_id}/versions/{version_id}/stats", params={"top": 1}, headers=ACME
    )
    assert len(top.json()["fields"]["label"]["values"]) == 1
    elsewhere = await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/stats", headers=GLOBEX)
    assert elsewhere.status_code == 404


async def test_split_outputs_and_files_scanned_before_statistics_have_them_too(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id, version_id = await _version(svc, {"train.jsonl": jsonl(TRAIN)})
    split = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/split",
        json={"ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}, "seed": 1, "stratify_by": "label"},
        headers=ACME,
    )
    assert split.status_code == 202, split.text
    output = (await split_done(svc, dataset_id, split.json()["id"]))["output_version_id"]
    derived = (await svc.http.get(f"/datasets/{dataset_id}/versions/{output}/stats", headers=ACME)).json()
    assert derived["records"] == 300
    assert {f["name"]: f["records"] for f in derived["files"]} == {
        "test.jsonl": 30,
        "train.jsonl": 240,
        "validation.jsonl": 30,
    }
    assert derived["fields"]["label"]["values"][0] == {"value": "ham", "count": 200, "share": 0.666667}

    before = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/stats", headers=ACME)).json()
    async with svc.runtime.db.transaction() as session:  # as a file uploaded before statistics existed
        for file in (
            await session.exec(select(VersionFile).where(VersionFile.version_id == version_id))
        ).all():
            file.stats = None
            session.add(file)
    again = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/stats", headers=ACME)).json()
    assert again == before
    async with svc.runtime.db.session() as session:
        kept = (await session.exec(select(VersionFile).where(VersionFile.version_id == version_id))).one()
    assert kept.stats is not None and kept.stats["records"] == 300


SFT_SCHEMA = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string"},
        "output": {"type": "string"},
        "score": {"type": "number"},
    },
    "required": ["instruction", "output"],
    "additionalProperties": False,
}


async def test_publish_checks_the_records_against_the_schema_hint_and_infers_the_schema(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    body = {
        "name": f"ds-{uuid.uuid4().hex[:8]}",
        "modality": "text",
        "secrecy": "internal",
        "licence": "proprietary",
        "source": "upload",
        "schema_hint": SFT_SCHEMA,
    }
    created = await svc.http.post("/datasets", json=body, headers=ACME)
    dataset_id = created.json()["id"]
    good = [{"instruction": f"q{i}", "output": "a", "score": i} for i in range(5)] + [
        {"instruction": "q", "output": "a", "score": 0.5}
    ]
    bad = [
        {"instruction": "q", "output": "a"},
        {"instruction": "q", "output": 3},
        {"output": "a", "extra": 1},
    ]

    def publish(version_id: str) -> Any:
        return svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)

    good_id = await create_version(svc, dataset_id)
    await upload(svc, dataset_id, good_id, "train.jsonl", jsonl(good))
    bad_id = await create_version(svc, dataset_id)
    await upload(svc, dataset_id, bad_id, "train.jsonl", jsonl(bad))
    published, refused = await publish(good_id), await publish(bad_id)

    assert published.status_code == 200, published.text
    assert published.json()["record_schema"] == {
        "type": "object",
        "properties": {
            "instruction": {"type": "string"},
            "output": {"type": "string"},
            "score": {"type": ["integer", "number"]},
        },
        "required": ["instruction", "output", "score"],
    }
    assert refused.status_code == 422
    version = (await svc.http.get(f"/datasets/{dataset_id}/versions/{bad_id}", headers=ACME)).json()
    assert version["state"] == "invalid"
    assert version["errors"] == [
        "schema: field 'instruction' is missing in 1 of 3 records",
        "schema: field 'output' is integer in 1 records; the schema hint allows string",
        "schema: field 'extra' (1 records) is not in the schema hint",
    ]
    malformed = await svc.http.post(
        "/datasets",
        json={**body, "name": "x-bad", "schema_hint": {"properties": {"a": {"type": "text"}}}},
        headers=ACME,
    )
    assert malformed.status_code == 422, malformed.text
    assert malformed.json()["errors"][0]["location"] == "body.schema_hint"
    assert "properties.a.type must be one or more of" in malformed.json()["detail"]
