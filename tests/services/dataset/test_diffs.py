"""Row-level and file-level diffs of two versions (DS-2), each a background dataset task on the real
stack (Temporal workflow, the bucket, Kafka events): keyed and by-content diffs, paging through the
changes, one task for identical requests, clear failures, and cancelling a running task."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

from forge_contracts.activities.dataset import task_workflow_id
from forge_dataset.tasks.runner import TaskActivities, TaskContext, TaskResult
from forge_kit.stack_env import StackSettings

from tests.harness import replays
from tests.services.dataset.conftest import DatasetService, EventLog
from tests.services.dataset.test_dataset_service import (
    ACME,
    GLOBEX,
    create_dataset,
    create_version,
    jsonl,
    upload,
)
from tests.waiting import eventually


def _records(ids: range, *, changed: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "text": f"ticket {i}" + (" (edited)" if i in changed else ""),
            "label": ["billing", "bug"][i % 2],
        }
        for i in ids
    ]


async def _publish(svc: DatasetService, dataset_id: str, files: dict[str, bytes]) -> str:
    version_id = await create_version(svc, dataset_id)
    for name, data in files.items():
        uploaded = await upload(svc, dataset_id, version_id, name, data)
        assert uploaded.status_code == 200, uploaded.text
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert published.status_code == 200, published.text
    return version_id


async def _finished(svc: DatasetService, dataset_id: str, diff_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        view = (await svc.http.get(f"/datasets/{dataset_id}/diffs/{diff_id}", headers=ACME)).json()
        return view if view["task"]["state"] in ("succeeded", "failed", "cancelled") else None

    return await eventually(done, timeout_s=60, interval_s=0.2, what=f"diff {diff_id} to end")


async def _all_changes(
    svc: DatasetService, dataset_id: str, diff_id: str, change: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await svc.http.get(
            f"/datasets/{dataset_id}/diffs/{diff_id}/changes",
            params={"change": change, "offset": offset, "limit": 7},
            headers=ACME,
        )
        assert page.status_code == 200, page.text
        out += page.json()["records"]
        offset = page.json()["next_offset"]
    return out


async def test_a_keyed_diff_finds_added_removed_and_changed_records_whatever_their_order(
    dataset_service: DatasetService, events: EventLog, stack_settings: StackSettings
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    notes = jsonl([{"id": 10_000 + i, "text": "note"} for i in range(5)])
    base = await _publish(
        svc, dataset_id, {"train.jsonl": jsonl(_records(range(0, 3000))), "notes.jsonl": notes}
    )
    edited = frozenset(range(100, 3000, 97))
    newer = _records(range(40, 3050), changed=edited)
    random.Random(3).shuffle(newer)  # order is not a change
    newer[0] = dict(reversed(list(newer[0].items())))  # neither is key order
    version = await _publish(
        svc,
        dataset_id,
        {"train.jsonl": jsonl(newer), "notes.jsonl": notes, "extra.jsonl": jsonl([{"id": -1}])},
    )

    started = await svc.http.post(
        f"/datasets/{dataset_id}/diffs",
        json={"base_version_id": base, "version_id": version, "key": "id"},
        headers=ACME,
    )

    assert started.status_code == 202, started.text
    assert started.json()["task"]["kind"] == "diff"
    assert {f["name"]: f["change"] for f in started.json()["files"]} == {
        "extra.jsonl": "added",
        "notes.jsonl": "unchanged",
        "train.jsonl": "changed",
    }
    diff_id = started.json()["task"]["id"]
    view = await _finished(svc, dataset_id, diff_id)
    assert view["task"]["state"] == "succeeded", view
    assert view["summary"] == {
        "added": 50 + 1,  # ids 3000..3049 and the extra file's record
        "removed": 40,
        "changed": len(edited),
        "unchanged": 3000 - 40 - len(edited) + 5,
        "base_records": 3005,
        "records": 3010 + 5 + 1,
    }
    assert (view["task"]["progress"], view["task"]["eta_s"]) == (1.0, 0.0)
    added = await _all_changes(svc, dataset_id, diff_id, "added")
    assert sorted(r["id"] for r in added) == [-1, *range(3000, 3050)]
    removed = await _all_changes(svc, dataset_id, diff_id, "removed")
    assert sorted(r["id"] for r in removed) == list(range(40))
    changed = await _all_changes(svc, dataset_id, diff_id, "changed")
    assert sorted(c["key"] for c in changed) == sorted(edited)
    one = next(c for c in changed if c["key"] == 100)
    assert one["fields"] == ["text"]
    assert (one["before"]["text"], one["after"]["text"]) == ("ticket 100", "ticket 100 (edited)")
    seen = await events.of(diff_id, 4)
    assert [e.type.split(".")[3] for e in seen] == ["created", "queued", "started", "succeeded"]
    assert seen[-1].data["stats"]["changed"] == len(edited)
    await replays(stack_settings, {"dataset-task-succeeded": task_workflow_id(diff_id)})


async def test_a_diff_by_content_counts_duplicate_records(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    a, b, c = {"text": "a"}, {"text": "b"}, {"text": "c", "n": 1}
    base = await _publish(svc, dataset_id, {"x.jsonl": jsonl([a, a, b])})
    version = await _publish(svc, dataset_id, {"x.jsonl": jsonl([b, {"n": 1, "text": "c"}, a, b])})

    started = await svc.http.post(
        f"/datasets/{dataset_id}/diffs", json={"base_version_id": base, "version_id": version}, headers=ACME
    )
    view = await _finished(svc, dataset_id, started.json()["task"]["id"])

    assert view["summary"] == {
        "added": 2,
        "removed": 1,
        "changed": 0,
        "unchanged": 2,
        "base_records": 3,
        "records": 4,
    }
    added = await _all_changes(svc, dataset_id, view["task"]["id"], "added")
    assert sorted(json.dumps(r, sort_keys=True) for r in added) == sorted(
        json.dumps(r, sort_keys=True) for r in (b, c)
    )


async def test_identical_diff_requests_share_one_task(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    base = await _publish(svc, dataset_id, {"x.jsonl": jsonl(_records(range(50)))})
    version = await _publish(svc, dataset_id, {"x.jsonl": jsonl(_records(range(10, 60)))})
    body = {"base_version_id": base, "version_id": version, "key": "id"}

    answers = await asyncio.gather(
        *(svc.http.post(f"/datasets/{dataset_id}/diffs", json=body, headers=ACME) for _ in range(4))
    )

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202], [a.text for a in answers]
    assert len({a.json()["task"]["id"] for a in answers}) == 1
    view = await _finished(svc, dataset_id, answers[0].json()["task"]["id"])
    later = await svc.http.post(f"/datasets/{dataset_id}/diffs", json=body, headers=ACME)
    assert (later.status_code, later.json()["task"]["id"]) == (200, view["task"]["id"])
    assert later.json()["summary"]["added"] == 10
    by_content = await svc.http.post(
        f"/datasets/{dataset_id}/diffs", json={**body, "key": None}, headers=ACME
    )
    assert by_content.status_code == 202 and by_content.json()["task"]["id"] != view["task"]["id"]
    listed = await svc.http.get(f"/datasets/{dataset_id}/tasks", params={"kind": "diff"}, headers=ACME)
    assert [t["id"] for t in listed.json()] == [by_content.json()["task"]["id"], view["task"]["id"]]


async def test_a_duplicate_key_fails_the_diff_with_the_reason_and_a_retry_starts_afresh(
    dataset_service: DatasetService, events: EventLog, stack_settings: StackSettings
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    base = await _publish(svc, dataset_id, {"x.jsonl": jsonl([{"id": 1}, {"id": 2}])})
    version = await _publish(svc, dataset_id, {"x.jsonl": jsonl([{"id": 1}, {"id": 1, "v": 2}])})
    body = {"base_version_id": base, "version_id": version, "key": "id"}

    first = await svc.http.post(f"/datasets/{dataset_id}/diffs", json=body, headers=ACME)
    view = await _finished(svc, dataset_id, first.json()["task"]["id"])

    assert view["task"]["state"] == "failed"
    assert "key 'id' is not unique in the new version: 1 appears more than once" in view["task"]["error"]
    assert view["summary"] is None
    early = await svc.http.get(
        f"/datasets/{dataset_id}/diffs/{view['task']['id']}/changes", params={"change": "added"}, headers=ACME
    )
    assert early.status_code == 409 and "failed" in early.json()["detail"]
    failed = (await events.of(view["task"]["id"], 4))[-1]
    assert (failed.type, failed.data["error_code"]) == ("forge.dataset.task.failed.v1", "diff_failed")
    await replays(stack_settings, {"dataset-task-failed": task_workflow_id(view["task"]["id"])})
    again = await svc.http.post(f"/datasets/{dataset_id}/diffs", json=body, headers=ACME)
    assert again.status_code == 202 and again.json()["task"]["id"] != view["task"]["id"]
    missing = await svc.http.post(f"/datasets/{dataset_id}/diffs", json={**body, "key": "nope"}, headers=ACME)
    missing_view = await _finished(svc, dataset_id, missing.json()["task"]["id"])
    assert "the record has no 'nope' field" in missing_view["task"]["error"]


async def test_bad_diff_requests_are_refused_before_any_task(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    published = await _publish(svc, dataset_id, {"x.jsonl": jsonl([{"id": 1}])})
    draft = await create_version(svc, dataset_id)
    url = f"/datasets/{dataset_id}/diffs"

    to_draft = await svc.http.post(
        url, json={"base_version_id": published, "version_id": draft}, headers=ACME
    )
    unknown = await svc.http.post(
        url, json={"base_version_id": published, "version_id": "nope"}, headers=ACME
    )
    elsewhere = await svc.http.post(
        url, json={"base_version_id": published, "version_id": published}, headers=GLOBEX
    )
    bad_key = await svc.http.post(
        url, json={"base_version_id": published, "version_id": published, "key": "a\nb"}, headers=ACME
    )

    assert to_draft.status_code == 409 and "'draft'" in to_draft.json()["detail"]
    assert unknown.status_code == 404
    assert elsewhere.status_code == 404  # another tenant's dataset does not exist for globex
    assert bad_key.status_code == 422 and "key" in bad_key.text
    assert (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json() == []


async def test_a_running_task_is_cancelled_within_seconds(
    dataset_service: DatasetService, events: EventLog, stack_settings: StackSettings
) -> None:
    svc = dataset_service
    activities = next(a.__self__ for a in svc.runtime.activities if isinstance(a.__self__, TaskActivities))  # type: ignore[attr-defined]
    real = activities.handlers["diff"]
    entered = asyncio.Event()

    async def held(ctx: TaskContext) -> TaskResult:  # the real diff, held until cancelled
        await ctx.report(0.25, force=True, phase="held")
        entered.set()
        await asyncio.sleep(3600)
        return await real(ctx)

    activities.handlers["diff"] = held
    try:
        dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
        base = await _publish(svc, dataset_id, {"x.jsonl": jsonl([{"id": 1}])})
        body = {"base_version_id": base, "version_id": base}
        started = await svc.http.post(f"/datasets/{dataset_id}/diffs", json=body, headers=ACME)
        task_id = started.json()["task"]["id"]
        await asyncio.wait_for(entered.wait(), 30)
        running = (await svc.http.get(f"/datasets/{dataset_id}/tasks/{task_id}", headers=ACME)).json()
        assert (running["state"], running["progress"], running["progress_detail"]) == (
            "running",
            0.25,
            {"phase": "held"},
        )

        cancel = await svc.http.post(
            f"/datasets/{dataset_id}/tasks/{task_id}/cancel", json={"reason": "wrong versions"}, headers=ACME
        )

        assert cancel.status_code == 202, cancel.text
        view = await _finished(svc, dataset_id, task_id)
        assert view["task"]["state"] == "cancelled"
        cancelled = (await events.of(task_id, 4))[-1]
        assert cancelled.type == "forge.dataset.task.cancelled.v1"
        assert (cancelled.data["actor"], cancelled.data["reason"]) == ("alice", "wrong versions")
        await replays(stack_settings, {"dataset-task-cancelled": task_workflow_id(task_id)})
        twice = await svc.http.post(f"/datasets/{dataset_id}/tasks/{task_id}/cancel", headers=ACME)
        assert twice.status_code == 409
        again = await svc.http.post(f"/datasets/{dataset_id}/diffs", json=body, headers=ACME)
        assert again.status_code == 202  # a cancelled diff does not answer for the next request
    finally:
        activities.handlers["diff"] = real
