"""Records that name media files of their version (the schema hint's `contentMediaType`): checked on
publish against the version's media files, shown with their references in the preview."""

from __future__ import annotations

import uuid
from typing import Any

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import ACME, create_dataset, create_version, jsonl, upload
from tests.services.dataset.test_file_kinds import png

HINT = {
    "type": "object",
    "properties": {"image": {"type": "string", "contentMediaType": "image/*"}, "label": {"type": "string"}},
    "required": ["image", "label"],
}


async def _draft(svc: DatasetService, files: dict[str, bytes]) -> tuple[str, str]:
    dataset_id = await create_dataset(
        svc, name=f"photos-{uuid.uuid4().hex[:8]}", modality="image", schema_hint=HINT
    )
    version_id = await create_version(svc, dataset_id)
    for name, data in files.items():
        assert (await upload(svc, dataset_id, version_id, name, data)).status_code == 200
    return dataset_id, version_id


async def _publish(svc: DatasetService, dataset_id: str, version_id: str) -> Any:
    return await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)


async def test_records_naming_the_versions_images_publish_and_preview_with_their_references(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    labels = [{"image": f"img/{i}.png", "label": ["cat", "dog"][i % 2]} for i in range(3)]
    dataset_id, version_id = await _draft(
        svc, {"labels.jsonl": jsonl(labels), **{f"img/{i}.png": png(colour=(i * 80, 0, 0)) for i in range(3)}}
    )

    published = await _publish(svc, dataset_id, version_id)

    assert published.status_code == 200, published.text
    preview = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}/preview", headers=ACME)
    ).json()
    assert [item["references"] for item in preview["items"]] == [{"image": f"img/{i}.png"} for i in range(3)]
    linked = {m["name"] for m in preview["media"]}
    assert {"img/0.png", "img/1.png", "img/2.png"} <= linked


async def test_a_record_naming_a_missing_or_wrong_kind_of_file_makes_the_version_invalid(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    labels = [
        {"image": "img/0.png", "label": "cat"},
        {"image": "img/gone.png", "label": "dog"},
        {"image": "notes.txt", "label": "cat"},
    ]
    dataset_id, version_id = await _draft(
        svc, {"labels.jsonl": jsonl(labels), "img/0.png": png(), "notes.txt": b"not an image\n"}
    )

    refused = await _publish(svc, dataset_id, version_id)

    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "labels.jsonl record 2: image 'img/gone.png' is not a media file of this version" in detail
    assert "labels.jsonl record 3: image 'notes.txt' is text/plain, not image/*" in detail
    version = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)).json()
    assert version["state"] == "invalid" and len(version["errors"]) == 2


async def test_a_hint_with_a_malformed_media_type_is_refused(dataset_service: DatasetService) -> None:
    hint = {"properties": {"image": {"type": "string", "contentMediaType": "pictures"}}}

    response = await dataset_service.http.post(
        "/datasets",
        json={"name": f"p-{uuid.uuid4().hex[:8]}", "modality": "image", "schema_hint": hint},
        headers=ACME,
    )

    assert response.status_code == 422 and "contentMediaType" in response.text
