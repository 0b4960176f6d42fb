"""The labeling service, end to end on the real stack with a real dataset service: templates, projects
created from a published dataset version (one task per record), the labeling task state machine, and
exports that publish a new dataset version with lineage to the source."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from tests.identity import Caller, as_user
from tests.services.labeling.conftest import EventLog, Services
from tests.waiting import eventually

ACME = as_user("bob", "acme")
CAROL = as_user("carol", "acme")
DAVE = as_user("dave", "acme")
GLOBEX = as_user("eve", "globex")
REVIEWS = [
    {"id": 1, "text": "great product, works well", "lang": "en"},
    {"id": 2, "text": "broke after a day", "lang": "en"},
    {"id": 3, "text": "does what it says", "lang": "en"},
    {"id": 4, "text": "meh", "lang": "en"},
]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def published_version(
    svc: Services, rows: list[dict[str, Any]], owner: Caller = ACME
) -> tuple[str, str]:
    """A dataset with one published version holding `rows`, uploaded through the dataset API by `owner`."""
    dataset = await svc.dataset.post(
        "/datasets",
        json={
            "name": unique("reviews"),
            "modality": "text",
            "secrecy": "internal",
            "licence": "proprietary",
            "source": "upload",
        },
        headers=owner,
    )
    assert dataset.status_code == 201, dataset.text
    dataset_id = dataset.json()["id"]
    version = await svc.dataset.post(f"/datasets/{dataset_id}/versions", headers=owner)
    version_id = version.json()["id"]
    uploaded = await svc.dataset.put(
        f"/datasets/{dataset_id}/versions/{version_id}/files/reviews.jsonl",
        content=jsonl(rows),
        headers=owner,
    )
    assert uploaded.status_code == 200, uploaded.text
    published = await svc.dataset.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=owner)
    assert published.status_code == 200, published.text
    return dataset_id, version_id


async def template(svc: Services, owner: Caller = ACME) -> dict[str, Any]:
    response = await svc.labeling.post(
        "/templates",
        json={
            "name": unique("sentiment"),
            "labels": ["negative", "positive"],
            "text_field": "text",
            "instructions": "Is the review positive or negative?",
        },
        headers=owner,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def project(
    svc: Services, rows: list[dict[str, Any]] = REVIEWS, owner: Caller = ACME
) -> tuple[dict[str, Any], list[str]]:
    """A labeling project of `owner` over a fresh published version of `rows`, and its task ids in record
    order."""
    dataset_id, version_id = await published_version(svc, rows, owner)
    tool = await template(svc, owner)
    response = await svc.labeling.post(
        "/projects",
        json={
            "name": unique("project"),
            "template_id": tool["id"],
            "dataset_id": dataset_id,
            "version_id": version_id,
        },
        headers=owner,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    page = await svc.labeling.get(f"/projects/{created['id']}/tasks", headers=owner)
    return created, [t["id"] for t in page.json()["tasks"]]


async def post(svc: Services, path: str, headers: Mapping[str, str], body: Any = None) -> Any:
    response = await svc.labeling.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


async def label(svc: Services, task_id: str, value: str) -> None:
    """Assign to carol, who starts and submits `value`; dave accepts it."""
    await post(svc, f"/tasks/{task_id}/assign", CAROL)
    await post(svc, f"/tasks/{task_id}/start", CAROL)
    await post(svc, f"/tasks/{task_id}/annotations", CAROL, {"label": value, "lead_time_s": 3.5})
    await post(svc, f"/tasks/{task_id}/accept", DAVE)


async def test_accepted_labels_export_as_a_new_dataset_version_with_lineage(services: Services) -> None:
    svc = services
    created, task_ids = await project(svc)
    assert created["task_count"] == 4
    assert created["counts"]["open"] == 4 and created["progress"] == 0.0
    first = await svc.labeling.get(f"/tasks/{task_ids[0]}", headers=ACME)
    assert first.json()["record"] == REVIEWS[0]
    assert first.json()["item_id"] == "reviews.jsonl:1"

    for task_id, value in zip(task_ids[:3], ["positive", "negative", "positive"], strict=True):
        await label(svc, task_id, value)
    progress = (await svc.labeling.get(f"/projects/{created['id']}", headers=ACME)).json()
    accepted = await svc.labeling.get(f"/projects/{created['id']}/tasks?state=accepted", headers=ACME)

    assert progress["counts"]["accepted"] == 3 and progress["counts"]["open"] == 1
    assert progress["progress"] == 0.75
    assert [t["id"] for t in accepted.json()["tasks"]] == task_ids[:3]

    started = await svc.labeling.post(
        f"/projects/{created['id']}/export", json={"format": "jsonl", "request_id": "export-1"}, headers=ACME
    )
    assert started.status_code == 202, started.text
    export_id = started.json()["id"]

    async def finished() -> dict[str, Any]:
        response = await svc.labeling.get(f"/projects/{created['id']}/exports/{export_id}", headers=ACME)
        body: dict[str, Any] = response.json()
        assert body["state"] in ("pending", "running", "succeeded"), body
        return body if body["state"] == "succeeded" else {}

    done = await eventually(finished, timeout_s=30, what="the export to succeed")
    assert done["record_count"] == 3
    version_id = done["dataset_version_id"]
    dataset_id = created["dataset_id"]
    version = await svc.dataset.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)
    preview = await svc.dataset.get(f"/datasets/{dataset_id}/versions/{version_id}/preview", headers=ACME)
    lineage = await svc.dataset.get(f"/datasets/{dataset_id}/versions/{version_id}/lineage", headers=ACME)

    assert version.json()["state"] == "published" and version.json()["item_count"] == 3
    assert preview.json()["records"] == [
        {**REVIEWS[0], "label": "positive"},
        {**REVIEWS[1], "label": "negative"},
        {**REVIEWS[2], "label": "positive"},
    ]
    chain = lineage.json()["chain"]
    assert [step["id"] for step in chain] == [version_id, created["dataset_version_id"]]
    assert chain[0]["operation"] == "labeling_export"

    again = await svc.labeling.post(
        f"/projects/{created['id']}/export", json={"format": "jsonl", "request_id": "export-1"}, headers=ACME
    )
    assert again.status_code == 200 and again.json()["id"] == export_id
    assert again.json()["dataset_version_id"] == version_id


async def test_each_task_transition_publishes_one_event_with_increasing_sequence(
    services: Services, events: EventLog
) -> None:
    svc = services
    _, task_ids = await project(svc, REVIEWS[:1])
    task_id = task_ids[0]

    await post(svc, f"/tasks/{task_id}/assign", ACME, {"assignee": "carol"})
    await post(svc, f"/tasks/{task_id}/start", CAROL)
    await post(svc, f"/tasks/{task_id}/annotations", CAROL, {"label": "negative"})
    await post(svc, f"/tasks/{task_id}/reject", DAVE, {"reason": "it reads positive"})
    await post(svc, f"/tasks/{task_id}/rework", CAROL)
    await post(svc, f"/tasks/{task_id}/annotations", CAROL, {"label": "positive"})
    final = await post(svc, f"/tasks/{task_id}/accept", DAVE)

    seen = await events.of(task_id, 8)
    assert [(e.type.split(".")[3], e.sequence) for e in seen] == [
        ("created", 1),
        ("assigned", 2),
        ("started", 3),
        ("submitted", 4),
        ("rejected", 5),
        ("rework_started", 6),
        ("submitted", 7),
        ("accepted", 8),
    ]
    assert final["sequence"] == 8
    assert all(e.tenantid == "acme" for e in seen)
    assert seen[1].data["assignee"] == "carol" and seen[1].data["actor"] == "bob"
    assert seen[4].data["reason"] == "it reads positive" and seen[4].data["reviewer"] == "dave"
    assert seen[7].data["annotation_id"] == final["annotation_id"]


async def test_a_label_the_template_does_not_offer_is_rejected(services: Services) -> None:
    svc = services
    _, task_ids = await project(svc, REVIEWS[:1])
    task_id = task_ids[0]
    await post(svc, f"/tasks/{task_id}/assign", CAROL)
    await post(svc, f"/tasks/{task_id}/start", CAROL)

    response = await svc.labeling.post(
        f"/tasks/{task_id}/annotations", json={"label": "neutral"}, headers=CAROL
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "label 'neutral'" in response.json()["detail"]
    after = (await svc.labeling.get(f"/tasks/{task_id}", headers=ACME)).json()
    assert after["state"] == "in_progress" and after["sequence"] == 3 and after["annotations"] == []


async def test_an_illegal_transition_is_a_conflict_and_changes_nothing(services: Services) -> None:
    svc = services
    _, task_ids = await project(svc, REVIEWS[:1])
    task_id = task_ids[0]

    accepted = await svc.labeling.post(f"/tasks/{task_id}/accept", headers=DAVE)
    submitted = await svc.labeling.post(
        f"/tasks/{task_id}/annotations", json={"label": "positive"}, headers=DAVE
    )

    assert accepted.status_code == 409 and submitted.status_code == 409
    assert accepted.json()["current_state"] == "open" and accepted.json()["allowed"] == ["assign", "cancel"]
    after = (await svc.labeling.get(f"/tasks/{task_id}", headers=ACME)).json()
    assert after["state"] == "open" and after["sequence"] == 1 and after["annotations"] == []


async def test_another_tenant_sees_none_of_it(services: Services) -> None:
    svc = services
    created, task_ids = await project(svc, REVIEWS[:1])
    await label(svc, task_ids[0], "positive")
    export = await post(svc, f"/projects/{created['id']}/export", ACME, {"format": "jsonl"})

    reads = [
        f"/templates/{created['template_id']}",
        f"/projects/{created['id']}",
        f"/projects/{created['id']}/tasks",
        f"/tasks/{task_ids[0]}",
        f"/projects/{created['id']}/exports/{export['id']}",
    ]
    for path in reads:
        response = await svc.labeling.get(path, headers=GLOBEX)
        assert response.status_code == 404, path
    writes = await svc.labeling.post(f"/tasks/{task_ids[0]}/cancel", headers=GLOBEX)
    own_template = await svc.labeling.post(
        "/templates", json={"name": unique("t"), "labels": ["x", "y"], "text_field": "text"}, headers=GLOBEX
    )
    stolen = await svc.labeling.post(
        "/projects",
        json={
            "name": unique("stolen"),
            "template_id": own_template.json()["id"],
            "dataset_id": created["dataset_id"],
            "version_id": created["dataset_version_id"],
        },
        headers=GLOBEX,
    )
    assert writes.status_code == 404 and stolen.status_code == 404
    assert [t["id"] for t in (await svc.labeling.get("/templates", headers=GLOBEX)).json()] == [
        own_template.json()["id"]
    ]
    assert (await svc.labeling.get("/projects", headers=GLOBEX)).json() == []
    assert (await svc.labeling.get(f"/tasks/{task_ids[0]}", headers=ACME)).json()["state"] == "accepted"


async def test_bad_input_is_refused_with_the_field_named(services: Services) -> None:
    svc = services
    no_labels = await svc.labeling.post(
        "/templates", json={"name": unique("t"), "labels": [], "text_field": "text"}, headers=ACME
    )
    twice = await svc.labeling.post(
        "/templates", json={"name": unique("t"), "labels": ["a", "a"], "text_field": "text"}, headers=ACME
    )
    no_tenant = await svc.labeling.get("/templates")
    bad_state = await svc.labeling.get(f"/projects/{uuid.uuid4()}/tasks?state=done", headers=ACME)

    assert no_labels.status_code == 422 and "body.labels" in no_labels.json()["detail"]
    assert twice.status_code == 422 and "distinct" in twice.json()["detail"]
    assert no_tenant.status_code == 401  # no bearer token
    assert bad_state.status_code == 422 and "query.state" in bad_state.json()["detail"]


async def test_a_project_needs_a_published_version_and_records_with_the_text_field(
    services: Services,
) -> None:
    svc = services
    tool = await template(svc)
    dataset_id, version_id = await published_version(svc, [{"body": "no text field here"}])

    async def create(version: str) -> Any:
        return await svc.labeling.post(
            "/projects",
            json={
                "name": unique("p"),
                "template_id": tool["id"],
                "dataset_id": dataset_id,
                "version_id": version,
            },
            headers=ACME,
        )

    missing = await create(str(uuid.uuid4()))
    wrong_records = await create(version_id)

    assert missing.status_code == 404, missing.text
    assert wrong_records.status_code == 422 and "'text'" in wrong_records.json()["detail"]
    listed = (await svc.labeling.get("/projects", headers=ACME)).json()
    assert all(p["dataset_id"] != dataset_id for p in listed)


async def test_exporting_a_project_with_nothing_accepted_is_a_conflict(services: Services) -> None:
    svc = services
    created, _ = await project(svc, REVIEWS[:1])

    response = await svc.labeling.post(f"/projects/{created['id']}/export", json={}, headers=ACME)

    assert response.status_code == 409 and "no accepted annotations" in response.json()["detail"]
