"""Processing pipelines on the real stack: a pipeline over a published version runs as a workload under the
scheduler's quota (the real scheduler service), on an embedded Ray started by the data runtime, reading
the record files in several byte-range shards through pre-signed MinIO links; its kept records become a
new version with lineage, and its report and dropped-records pages explain every record it removed. A
rule that raises or loops fails the task with a clear message and leaves no version; bad pipelines are
refused before anything runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.identity import as_user
from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.processing.corpus import corpus
from tests.services.dataset.test_dataset_service import ACME, jsonl, object_bytes, published_version
from tests.services.dataset.test_file_kinds import png
from tests.services.scheduler_service import allocations_of, project_with_quota
from tests.services.scheduler_service import scheduler as scheduler  # a fixture
from tests.waiting import eventually

PIPELINE: list[dict[str, Any]] = [
    {"op": "strip_html"},
    {"op": "normalize"},
    {"op": "language", "keep": ["en"]},
    {"op": "quality", "min_words": 20},
    {"op": "keywords", "keywords": ["forbidden-word"]},
    {"op": "pii"},
    {"op": "exact_dedup", "fields": ["text"]},
    {"op": "near_dedup", "ngram": 5, "bands": 20, "rows": 5, "threshold": 0.7},
    {
        "op": "rule",
        "name": "count words",
        "mode": "map",
        "function": "def rule(record):\n"
        "    record['words'] = len(record['text'].split())\n"
        "    return record\n",
    },
]
CSV = (
    b'id,text\n101,"Thanks, ok."\n'
    b"102,The quiet harbour waited with the bright market and found a garden near the school. "
    b"Later that year the garden became busy again and people walked to the old museum.\n"
)


async def _process(
    svc: DatasetService, dataset_id: str, version_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/process", json=body, headers=ACME
    )


async def task_ended(svc: DatasetService, dataset_id: str, task_id: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def ended() -> dict[str, Any] | None:
        found = (await svc.http.get(f"/datasets/{dataset_id}/tasks/{task_id}", headers=ACME)).json()
        seen.append(found)
        return found if found["state"] in ("succeeded", "failed", "cancelled") else None

    try:
        done = await eventually(ended, timeout_s=240, interval_s=0.5, what=f"task {task_id} to end")
    except AssertionError as error:
        raise AssertionError(f"{error}; the task as last seen: {seen[-1] if seen else None}") from None
    done["_seen"] = seen
    return done


async def released(scheduler: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """The task's one allocation, once given back (the workflow releases it after the task ended)."""

    async def given_back() -> dict[str, Any] | None:
        (allocation,) = await allocations_of(scheduler, task_id)
        return allocation if allocation["state"] == "released" else None

    return await eventually(
        given_back, timeout_s=30, interval_s=0.2, what=f"task {task_id}'s allocation back"
    )


async def test_a_pipeline_cleans_a_version_into_a_new_version_whose_report_explains_every_dropped_record(
    dataset_service: DatasetService, scheduler: httpx.AsyncClient
) -> None:
    svc = dataset_service
    records, planted = corpus()
    image = png()
    dataset_id, version_id, source = await published_version(
        svc, {"train.jsonl": jsonl(records), "extra.csv": CSV, "images/cat.png": image}
    )
    project = await project_with_quota(scheduler, cpu_millis=2000)
    body = {"ops": PIPELINE, "project_id": project, "resources": {"cpu_cores": 2}}

    started = await _process(svc, dataset_id, version_id, body)
    assert started.status_code == 202, started.text
    again = await _process(svc, dataset_id, version_id, body)
    assert (again.status_code, again.json()["id"]) == (200, started.json()["id"])  # one task for both
    done = await task_ended(svc, dataset_id, started.json()["id"])

    assert done["state"] == "succeeded", done["error"]
    assert any(s["state"] == "running" and s["progress_detail"].get("phase") for s in done["_seen"])
    allocation = await released(scheduler, done["id"])
    assert allocation["project_id"] == project and allocation["per_worker"]["cpu_millis"] == 2000

    stats = done["stats"]
    assert stats["records_in"] == 42 and stats["records_out"] + stats["records_dropped"] == 42
    by_op = {op["op"]: op for op in done["result"]["ops"]}
    dropped = {name: op["dropped"] for name, op in by_op.items() if op["dropped"]}
    # extra.csv's first record is the second short one
    assert dropped == {"language": 1, "quality": 2, "keywords": 1, "exact_dedup": 1, "near_dedup": 1}
    assert by_op["strip_html"]["changed"] == 1 and by_op["pii"]["changed"] == 1
    assert by_op["rule"]["changed"] == stats["records_out"]
    assert by_op["strip_html"]["samples"][0]["record"] == {"file": "train.jsonl", "record": planted["html"]}
    assert by_op["near_dedup"]["dedup"]["clusters"] == 1
    assert done["result"]["clusters"] == [
        {
            "op": 8,
            "kept": {"file": "train.jsonl", "record": 11},
            "dropped": [{"file": "train.jsonl", "record": planted["near"]}],
        }
    ]

    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert (version["parent_version_id"], version["operation"]) == (version_id, "process")
    assert version["parameters"]["ops"][0] == {"op": "strip_html", "fields": ["text"], "drop_empty": True}
    files = {f["name"]: f for f in version["files"]}
    assert sorted(files) == ["extra.jsonl", "images/cat.png", "train.jsonl"]
    source_keys = {f["name"]: f["object_key"] for f in source["files"]}
    assert files["images/cat.png"]["object_key"] == source_keys["images/cat.png"]
    kept = [
        json.loads(line)
        for line in (await object_bytes(svc, files["train.jsonl"]["object_key"])).splitlines()
    ]
    gone = {planted[k] for k in ("short", "exact", "near", "german", "keyword")}
    assert [r["id"] for r in kept] == [i for i in range(1, 41) if i not in gone]  # order kept
    html = next(r for r in kept if r["id"] == planted["html"])["text"]
    assert "<" not in html and "track()" not in html and "Second & last." in html
    pii = next(r for r in kept if r["id"] == planted["pii"])["text"]
    assert "Write to [EMAIL] or call [PHONE] today." in pii
    assert all(r["words"] == len(r["text"].split()) for r in kept)
    assert files["extra.jsonl"]["record_count"] == 1

    page = (await svc.http.get(f"/datasets/{dataset_id}/tasks/{done['id']}/dropped", headers=ACME)).json()
    assert page["total"] == stats["records_dropped"] == len(page["items"]) and page["next_offset"] is None
    where = {(d["file"], d["record"]): d for d in page["items"]}
    assert set(where) == {("train.jsonl", n) for n in gone} | {("extra.csv", 1)}
    exact = where[("train.jsonl", planted["exact"])]
    assert (exact["operator"], exact["duplicate_of"]) == ("exact_dedup", {"file": "train.jsonl", "record": 1})
    assert where[("train.jsonl", planted["near"])]["duplicate_of"] == {"file": "train.jsonl", "record": 11}
    assert where[("train.jsonl", planted["german"])]["reason"].startswith("language de")
    assert where[("train.jsonl", planted["short"])]["data"]["id"] == planted["short"]
    assert "forbidden-word" in where[("train.jsonl", planted["keyword"])]["reason"]
    one_op = await svc.http.get(
        f"/datasets/{dataset_id}/tasks/{done['id']}/dropped", params={"op": 4, "limit": 1}, headers=ACME
    )
    assert (
        one_op.json()["total"] == 2 and len(one_op.json()["items"]) == 1 and one_op.json()["next_offset"] == 1
    )

    stranger = as_user("mallory", "globex")
    assert (
        await svc.http.get(f"/datasets/{dataset_id}/tasks/{done['id']}/dropped", headers=stranger)
    ).status_code == 404


async def test_a_rule_that_raises_or_loops_fails_the_task_with_its_reason_and_leaves_no_version(
    dataset_service: DatasetService, scheduler: httpx.AsyncClient
) -> None:
    svc = dataset_service
    records, _ = corpus()
    dataset_id, version_id, _ = await published_version(svc, {"train.jsonl": jsonl(records)})
    project = await project_with_quota(scheduler, cpu_millis=4000)
    raising = {"op": "rule", "name": "boom", "expression": "1 / (id - 17) > 0"}
    looping = {
        "op": "rule",
        "name": "spin",
        "timeout_s": 1,
        "function": "def rule(record):\n    while True:\n        pass\n",
    }
    started = [
        await _process(
            svc, dataset_id, version_id, {"ops": [{"op": "normalize"}, rule], "project_id": project}
        )
        for rule in (raising, looping)
    ]
    assert [s.status_code for s in started] == [202, 202], [s.text for s in started]
    raised, looped = await asyncio.gather(*(task_ended(svc, dataset_id, s.json()["id"]) for s in started))

    assert raised["state"] == "failed"
    assert raised["error"].startswith("op 2 (rule 'boom') on record train.jsonl record 17")
    assert "ZeroDivisionError: division by zero" in raised["error"]
    assert looped["state"] == "failed"
    assert looped["error"].startswith(
        "op 2 (rule 'spin') used up its 1 s of CPU on records train.jsonl record"
    )
    assert raised["output_version_id"] is None and looped["output_version_id"] is None
    versions = (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json()
    assert [v["id"] for v in versions] == [version_id]
    for task in (raised, looped):
        await released(scheduler, task["id"])


async def test_bad_pipelines_are_refused_before_anything_runs(dataset_service: DatasetService) -> None:
    svc = dataset_service
    records, _ = corpus()
    dataset_id, version_id, _ = await published_version(svc, {"train.jsonl": jsonl(records[:3])})
    project = "0193a1a0-0000-7000-8000-000000000001"
    cases = {
        "unknown op": [{"op": "shuffle"}],
        "bad parameter": [{"op": "near_dedup", "bands": 64, "rows": 32}],
        "bad threshold": [{"op": "near_dedup", "threshold": 1.5}],
        "unknown parameter": [{"op": "quality", "min_wordz": 3}],
        "rule syntax": [{"op": "rule", "expression": "id >"}],
        "rule without rule()": [{"op": "rule", "function": "def other(record):\n    return True\n"}],
        "missing field": [{"op": "strip_html", "fields": ["body"]}],
        "no ops": [],
    }
    for case, ops in cases.items():
        answer = await _process(svc, dataset_id, version_id, {"ops": ops, "project_id": project})
        assert answer.status_code == 422, (case, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), case
    missing = (
        await _process(
            svc,
            dataset_id,
            version_id,
            {"ops": [{"op": "strip_html", "fields": ["body"]}], "project_id": project},
        )
    ).json()
    assert "op 1 (strip_html) reads field 'body'" in missing["detail"]
    tasks = (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json()
    assert tasks == []
    stranger = as_user("mallory", "globex")
    answer = await svc.http.post(
        f"/datasets/{dataset_id}/versions/{version_id}/process",
        json={"ops": [{"op": "normalize"}], "project_id": project},
        headers=stranger,
    )
    assert answer.status_code == 404
