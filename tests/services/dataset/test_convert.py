"""Converting a version's records to Parquet (DS-1's storage format) as a background task on the real
stack: typed columns from the scan's statistics, nested and mixed values as JSON text, media carried
over, lineage, identical requests shared, and no version left by a conversion that cannot be done."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pyarrow.parquet as pq

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import (
    ACME,
    create_dataset,
    create_version,
    jsonl,
    object_bytes,
    published_version,
    upload,
)
from tests.services.dataset.test_file_kinds import png
from tests.services.dataset.test_splits import split_done

RECORDS = [
    {"id": i, "text": f"line {i}", "score": i if i % 2 else i + 0.5, "ok": i % 3 == 0, "label": None}
    | ({"tags": ["a", str(i)], "meta": {"n": i}} if i % 4 == 0 else {"meta": f"plain {i}"})
    for i in range(2500)
]
CSV = b"id,city\n1,Paris\n2,Lyon\n3,\xe5\x8c\x97\xe4\xba\xac\n"


async def _convert(svc: DatasetService, dataset_id: str, version_id: str, **body: Any) -> Any:
    return await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/convert", json=body, headers=ACME
    )


async def test_a_version_is_converted_to_typed_parquet_with_lineage_and_media_carried_over(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    image = png()
    dataset_id, version_id, source = await published_version(
        svc, {"train.jsonl": jsonl(RECORDS), "cities.csv": CSV, "images/cat.png": image}
    )

    started = await _convert(svc, dataset_id, version_id, row_group_rows=1000)
    assert started.status_code == 202, started.text
    done = await split_done(svc, dataset_id, started.json()["id"])

    assert done["state"] == "succeeded", done
    assert done["kind"] == "convert" and done["stats"]["files_converted"] == 2
    assert done["stats"]["records"] == 2503
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert (version["parent_version_id"], version["operation"]) == (version_id, "convert")
    files = {f["name"]: f for f in version["files"]}
    assert sorted(files) == ["cities.parquet", "images/cat.png", "train.parquet"]
    assert (
        files["images/cat.png"]["object_key"]
        == {f["name"]: f for f in source["files"]}["images/cat.png"]["object_key"]
    )
    assert files["train.parquet"]["record_count"] == 2500 and files["train.parquet"]["format"] == "parquet"

    table = pq.read_table(io.BytesIO(await object_bytes(svc, files["train.parquet"]["object_key"])))
    types = {field.name: str(field.type) for field in table.schema}
    assert types == {
        "id": "int64",
        "text": "string",
        "score": "double",
        "ok": "bool",
        "label": "string",
        "tags": "string",
        "meta": "string",
    }
    assert table.schema.metadata[b"forge.json_fields"] == b"meta,tags"
    assert (
        pq.ParquetFile(
            io.BytesIO(await object_bytes(svc, files["train.parquet"]["object_key"]))
        ).metadata.num_row_groups
        == 3
    )
    rows = table.to_pylist()
    assert rows[0] == {
        "id": 0,
        "text": "line 0",
        "score": 0.5,
        "ok": True,
        "label": None,
        "tags": '["a","0"]',
        "meta": '{"n":0}',
    }
    assert rows[1]["tags"] is None and json.loads(rows[1]["meta"]) == "plain 1"
    cities = pq.read_table(
        io.BytesIO(await object_bytes(svc, files["cities.parquet"]["object_key"]))
    ).to_pylist()
    assert cities == [{"id": "1", "city": "Paris"}, {"id": "2", "city": "Lyon"}, {"id": "3", "city": "北京"}]
    preview = await svc.http.get(
        f"/datasets/{dataset_id}/versions/{version['id']}/preview",
        params={"file": "train.parquet", "limit": 2},
        headers=ACME,
    )
    assert [r["id"] for r in preview.json()["records"]] == [0, 1], preview.text

    again = await _convert(svc, dataset_id, version_id, row_group_rows=1000)
    assert (again.status_code, again.json()["id"]) == (200, done["id"])


async def test_a_conversion_that_cannot_be_done_says_why_and_leaves_no_version(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    clash_dataset, clash_version, _ = await published_version(
        svc, {"a.jsonl": jsonl([{"x": 1}]), "a.csv": b"x\n1\n"}
    )
    media_dataset, media_version, _ = await published_version(svc, {"cat.png": png()})

    for dataset_id, version_id, reason in (
        (clash_dataset, clash_version, "would both become a.parquet"),
        (media_dataset, media_version, "no JSONL or CSV record files"),
    ):
        started = await _convert(svc, dataset_id, version_id)
        done = await split_done(svc, dataset_id, started.json()["id"])
        assert done["state"] == "failed" and reason in done["error"], done
        versions = (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json()
        assert [v["id"] for v in versions] == [version_id]


async def test_bad_conversions_are_refused_before_any_task(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    draft = await create_version(svc, dataset_id)
    assert (await upload(svc, dataset_id, draft, "a.jsonl", jsonl([{"x": 1}]))).status_code == 200

    for body, status in (
        ({}, 409),
        ({"format": "orc"}, 422),
        ({"row_group_rows": 5}, 422),
        ({"nope": 1}, 422),
    ):
        response = await _convert(svc, dataset_id, draft, **body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await _convert(svc, str(uuid.uuid4()), draft)).status_code == 404
    assert (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json() == []
