"""Record previews (DS-3) through the API: pages over JSONL, CSV and Parquet files alike, with search,
field filters, one file's records and chosen fields, on the real stack."""

from __future__ import annotations

import uuid
from typing import Any

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import ACME, create_dataset, create_version, jsonl, upload
from tests.services.dataset.test_file_kinds import parquet


async def _version(svc: DatasetService) -> tuple[str, str]:
    dataset_id = await create_dataset(svc, name=f"preview-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    files = {
        "a.jsonl": jsonl(
            [{"id": i, "text": f"jsonl row {i}", "label": "pos" if i % 2 else "neg"} for i in range(5)]
        ),
        "b.csv": b"id,text,label\n" + b"".join(f"{i},csv row {i},neg\n".encode() for i in range(5, 10)),
        "c.parquet": parquet(
            {"id": list(range(10, 15)), "text": [f"parquet Row {i}" for i in range(10, 15)]}
        ),
    }
    for name, data in files.items():
        assert (await upload(svc, dataset_id, version_id, name, data)).status_code == 200
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert published.status_code == 200, published.text
    return dataset_id, version_id


async def _preview(svc: DatasetService, dataset_id: str, version_id: str, **params: Any) -> Any:
    return await svc.http.get(
        f"/datasets/{dataset_id}/versions/{version_id}/preview", params=params, headers=ACME
    )


async def test_pages_run_across_jsonl_csv_and_parquet_files(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id, version_id = await _version(svc)

    pages, offset = [], 0
    while offset is not None:
        page = (await _preview(svc, dataset_id, version_id, limit=4, offset=offset)).json()
        pages.append(page)
        offset = page["next_offset"]

    ids = [int(r["id"]) for p in pages for r in p["records"]]
    assert ids == list(range(15)) and len(pages) == 4
    assert pages[-1]["complete"] is True and pages[0]["complete"] is False
    assert pages[1]["items"][1] == {
        "file": "b.csv",
        "index": 0,
        "record": {"id": "5", "text": "csv row 5", "label": "neg"},
        "references": {},  # the dataset's hint names no media fields
    }


async def test_search_filters_a_file_and_fields_narrow_the_records(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id, version_id = await _version(svc)

    searched = (await _preview(svc, dataset_id, version_id, q="ROW 1", limit=100)).json()
    filtered = (await _preview(svc, dataset_id, version_id, where="label=neg", limit=100)).json()
    by_number = (await _preview(svc, dataset_id, version_id, where=["id=3"], limit=100)).json()
    one_file = (await _preview(svc, dataset_id, version_id, file="c.parquet", fields="id", limit=2)).json()
    missing = await _preview(svc, dataset_id, version_id, file="nope.jsonl")
    bad_filter = await _preview(svc, dataset_id, version_id, where="label")

    assert [r["text"] for r in searched["records"]] == [
        "jsonl row 1",
        *[f"parquet Row {i}" for i in range(10, 15)],
    ]
    assert [str(r["id"]) for r in filtered["records"]] == ["0", "2", "4", "5", "6", "7", "8", "9"]
    assert [r["text"] for r in by_number["records"]] == ["jsonl row 3"]
    assert one_file["records"] == [{"id": 10}, {"id": 11}] and one_file["next_offset"] == 2
    assert missing.status_code == 404 and "nope.jsonl" in missing.json()["detail"]
    assert bad_filter.status_code == 422 and "field=value" in bad_filter.json()["detail"]
