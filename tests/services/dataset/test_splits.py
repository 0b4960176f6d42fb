"""Splits (DS-4) as background dataset tasks on the real stack: ratio, stratified, grouped and k-fold,
seeded and reproducible, streamed (no size cap), published as a new version with lineage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import Counter
from typing import Any

from tests.services.dataset.conftest import DatasetService, EventLog
from tests.services.dataset.test_dataset_service import (
    ACME,
    SPLIT,
    create_dataset,
    create_version,
    jsonl,
    object_bytes,
    published_version,
    rows,
)
from tests.waiting import eventually


async def split_done(svc: DatasetService, dataset_id: str, task_id: str) -> dict[str, Any]:
    """The split task once it ended."""

    async def ended() -> dict[str, Any] | None:
        found = (await svc.http.get(f"/datasets/{dataset_id}/tasks/{task_id}", headers=ACME)).json()
        return found if found["state"] in ("succeeded", "failed", "cancelled") else None

    return await eventually(ended, timeout_s=90, interval_s=0.2, what=f"split {task_id} to end")


async def _split(
    svc: DatasetService, dataset_id: str, version_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    started = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/split", json=body, headers=ACME
    )
    assert started.status_code in (200, 202), started.text
    done = await split_done(svc, dataset_id, started.json()["id"])
    assert done["state"] == "succeeded", done
    return done


async def _outputs(svc: DatasetService, dataset_id: str, version_id: str) -> dict[str, list[dict[str, Any]]]:
    version = (await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)).json()
    out = {}
    for file in version["files"]:
        data = await object_bytes(svc, file["object_key"])
        assert hashlib.sha256(data).hexdigest() == file["sha256"]
        out[file["name"].removesuffix(".jsonl")] = [json.loads(line) for line in data.splitlines()]
    return out


async def test_a_seeded_split_is_reproducible_stratified_and_has_lineage(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id, source_id, _ = await published_version(svc, {"data.jsonl": jsonl(rows(100, ("x", "y")))})
    url = f"/datasets/{dataset_id}/versions/{source_id}/split"
    body = {**SPLIT, "seed": 7, "stratify_by": "label"}

    first = await svc.http.post(url, json=body, headers=ACME)
    again = await svc.http.post(url, json=body, headers=ACME)
    done = await split_done(svc, dataset_id, first.json()["id"])
    other = await _split(svc, dataset_id, source_id, {**body, "seed": 8})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]  # an identical request shares the task
    assert done["state"] == "succeeded" and done["progress"] == 1.0
    assert done["stats"] == {
        "records_in": 100,
        "records_train": 80,
        "records_validation": 10,
        "records_test": 10,
    }
    base = f"/datasets/{dataset_id}/versions"
    output = (await svc.http.get(f"{base}/{done['output_version_id']}", headers=ACME)).json()
    changed = (await svc.http.get(f"{base}/{other['output_version_id']}", headers=ACME)).json()
    assert output["state"] == "published"
    assert output["splits"] == {"train": 80, "validation": 10, "test": 10}
    manifest_key = output["manifest_uri"].removeprefix(f"s3://{svc.store.bucket}/")
    assert hashlib.sha256(await object_bytes(svc, manifest_key)).hexdigest() == output["manifest_sha256"]
    assert [f["name"] for f in output["files"]] == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    assert changed["manifest_sha256"] != output["manifest_sha256"]
    parts = await _outputs(svc, dataset_id, output["id"])
    assert sum(r["label"] == "x" for r in parts["train"]) == 40  # stratified: half of each label in train
    assert sorted(r["instruction"] for p in parts.values() for r in p) == sorted(
        f"question {i}" for i in range(100)
    )

    lineage = (await svc.http.get(f"{base}/{output['id']}/lineage", headers=ACME)).json()
    assert [step["id"] for step in lineage["chain"]] == [output["id"], source_id]
    assert lineage["chain"][0]["operation"] == "split"
    assert lineage["chain"][0]["parameters"]["seed"] == 7

    task_events = await events.of(done["id"], 4)
    assert [(e.type, e.sequence) for e in task_events] == [
        ("forge.dataset.task.created.v1", 1),
        ("forge.dataset.task.queued.v1", 2),
        ("forge.dataset.task.started.v1", 3),
        ("forge.dataset.task.succeeded.v1", 4),
    ]
    assert task_events[-1].data["output_version_id"] == output["id"]
    version_events = await events.of(output["id"], 4)
    assert [e.sequence for e in version_events] == [1, 2, 3, 4]
    assert version_events[0].data["parent_version_id"] == source_id


async def test_the_same_split_of_the_same_records_gives_the_same_version_content(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    data = jsonl(rows(40_000, ("a", "b", "c"), pad=250))  # about 11 MiB: many chunks, lines across them
    first_ds, first_v, _ = await published_version(svc, {"data.jsonl": data})
    second_ds, second_v, _ = await published_version(svc, {"data.jsonl": data})
    body = {"ratios": {"train": 0.7, "validation": 0.2, "test": 0.1}, "seed": 11}

    one, two = await asyncio.gather(
        _split(svc, first_ds, first_v, body), _split(svc, second_ds, second_v, body)
    )

    versions = [
        (await svc.http.get(f"/datasets/{ds}/versions/{t['output_version_id']}", headers=ACME)).json()
        for ds, t in ((first_ds, one), (second_ds, two))
    ]
    assert versions[0]["splits"] == {"train": 28_000, "validation": 8_000, "test": 4_000}
    assert [f["sha256"] for f in versions[0]["files"]] == [f["sha256"] for f in versions[1]["files"]]
    parts = await _outputs(svc, first_ds, versions[0]["id"])
    assert len({r["instruction"] for p in parts.values() for r in p}) == 40_000


async def test_a_stratified_k_fold_split_balances_folds_and_labels(dataset_service: DatasetService) -> None:
    svc = dataset_service
    labelled = [{"id": i, "label": "rare" if i % 10 == 0 else "common"} for i in range(103)]
    dataset_id, version_id, _ = await published_version(svc, {"data.jsonl": jsonl(labelled)})

    done = await _split(svc, dataset_id, version_id, {"folds": 5, "seed": 3, "stratify_by": "label"})

    output = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert sorted(output["splits"]) == ["fold-1", "fold-2", "fold-3", "fold-4", "fold-5"]
    assert sorted(output["splits"].values()) in (
        [20, 20, 21, 21, 21],
    )  # 103 records: folds differ by one at most
    parts = await _outputs(svc, dataset_id, output["id"])
    assert sorted(r["id"] for p in parts.values() for r in p) == list(range(103))
    assert sorted(sum(r["label"] == "rare" for r in p) for p in parts.values()) == [2, 2, 2, 2, 3]  # 11 rare


async def test_a_grouped_split_keeps_every_group_in_one_output(dataset_service: DatasetService) -> None:
    svc = dataset_service
    conversations = [{"user": f"u{i % 40}", "turn": i} for i in range(400)] + [{"turn": -1}, {"turn": -2}]
    dataset_id, version_id, _ = await published_version(svc, {"data.jsonl": jsonl(conversations)})
    body = {**SPLIT, "seed": 5, "group_by": "user"}

    done = await _split(svc, dataset_id, version_id, body)

    parts = await _outputs(svc, dataset_id, done["output_version_id"])
    where = {}
    for name, records in parts.items():
        for record in records:
            assert where.setdefault(record.get("user"), name) == name  # no group in two outputs
    assert len(where) == 41  # 40 users and the records without one, kept together
    assert Counter(where.values())["train"] >= 20  # ratios hold on average over whole groups
    again = await _split(svc, dataset_id, version_id, {**body})  # shared: same task
    assert again["id"] == done["id"]


async def test_bad_split_parameters_are_a_422_naming_the_field(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)
    cases = [
        ({"ratios": {"train": 0.8, "validation": 0.3, "test": 0.1}, "seed": 1}, "body.ratios", "sum to 1"),
        ({"ratios": {"train": 0.8, "test": 0.2}, "seed": 1}, "body.ratios", "train, validation, test"),
        ({**SPLIT, "seed": -1}, "body.seed", "greater than or equal to 0"),
        ({**SPLIT, "folds": 5, "seed": 1}, "body", "either ratios or folds"),
        ({"seed": 1}, "body", "either ratios or folds"),
        ({"folds": 1, "seed": 1}, "body.folds", "greater than or equal to 2"),
        ({**SPLIT, "seed": 1, "stratify_by": "a", "group_by": "b"}, "body", "cannot be combined"),
    ]

    for body, location, message in cases:
        response = await svc.http.post(
            f"/datasets/{dataset_id}/versions/{version_id}/split", json=body, headers=ACME
        )

        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["location"] == location
        assert message in response.json()["detail"]


async def test_splitting_an_unpublished_version_is_a_409(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    version_id = await create_version(svc, dataset_id)

    response = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/split", json={**SPLIT, "seed": 1}, headers=ACME
    )

    assert response.status_code == 409
    assert "published" in response.json()["detail"]


async def test_stratifying_on_a_field_with_too_many_values_fails_the_task_with_the_reason(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id, version_id, _ = await published_version(
        svc, {"data.jsonl": jsonl([{"id": i} for i in range(10_050)])}
    )

    started = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/split",
        json={**SPLIT, "seed": 1, "stratify_by": "id"},
        headers=ACME,
    )
    done = await split_done(svc, dataset_id, started.json()["id"])

    assert done["state"] == "failed"
    assert "'id' has more than 10000 distinct values" in done["error"]
    versions = (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json()
    assert [v["id"] for v in versions] == [version_id]  # no half-written output version
