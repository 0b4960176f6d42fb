"""The whole chain on the real stack: dataset -> scheduler -> training -> evaluation -> registry gate ->
delivery, each service running with its own database and its worker on its real task queue, set up by
the same steps as `forge demo`, and an inference-platform consumer written only from docs/events.md that
downloads the delivered bundle, checks every checksum and generates text with stock transformers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from forge_cli.demo import DemoInputs, chain_body, follow_chain, start_chain
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings

from tests.chain.conftest import TENANT, Platform, running_platform
from tests.harness import replays
from tests.identity import as_user
from tests.waiting import eventually

DELIVERED_TIMELINE = [
    "resolving_dataset",
    "allocating",
    "training",
    "evaluating",
    "registering",
    "gating",
    "releasing",
    "delivering",
    "delivered",
]
"""The stages of a chain whose evaluation passes the gate, in order."""


@pytest.fixture
async def platform(
    stack_settings: StackSettings, s3_bucket: str, inputs: DemoInputs, tmp_path: Path
) -> AsyncIterator[Platform]:
    async with running_platform(stack_settings, s3_bucket, inputs, tmp_path / "jobs") as running:
        yield running


async def _stage(platform: Platform, chain_id: str) -> dict[str, Any]:
    response = await platform.http["training"].get(f"/chains/{chain_id}", headers=TENANT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if body["workflow_status"] in ("FAILED", "TERMINATED", "TIMED_OUT"):
        raise AssertionError(
            f"chain ended {body['workflow_status']}: {body['status']}"
        )  # fail fast, with why
    return body


async def _reach(platform: Platform, chain_id: str, stage: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = await _stage(platform, chain_id)
        return body if body["status"]["stage"] == stage else None

    found = await eventually(reached, timeout_s=600, interval_s=1.0, what=f"chain stage {stage}")
    assert found is not None
    return found


async def _delivered_event(bootstrap: str, model_version_id: str) -> dict[str, Any]:
    """What an inference platform does, from docs/events.md alone: read forge.delivery.events, keep
    `forge.delivery.model.delivered.v1` (the `ce_type` header), parse the JSON value."""
    consumer = AIOKafkaConsumer(
        "forge.delivery.events",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"inference-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    try:

        async def find() -> dict[str, Any] | None:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers}
                    if headers.get("ce_type") != "forge.delivery.model.delivered.v1":
                        continue
                    data: dict[str, Any] = json.loads(record.value)
                    if data["model_version_id"] == model_version_id:
                        return data
            return None

        found = await eventually(find, timeout_s=60, interval_s=0.1, what="the delivered event")
        assert found is not None
        return found
    finally:
        await consumer.stop()


async def test_a_model_goes_from_dataset_to_delivered_bundle_that_stock_transformers_loads(
    platform: Platform, stack_settings: StackSettings, tmp_path: Path
) -> None:
    seen: list[str] = []
    body = chain_body(platform.setup, {"perplexity": {"max": 1e9}})
    body["dataset_version_id"] = "latest"  # by alias: the chain pins the version `latest` names now
    started = await start_chain(platform.http["training"], platform.setup, body)
    assert "/workflows/model-chain" in started["temporal_ui"]

    done = await follow_chain(
        platform.http["training"],
        platform.setup.caller,
        started["chain_id"],
        timeout_s=600,
        on_stage=lambda view: seen.append(view["status"]["stage"]),
    )
    status = done["status"]
    assert status["gate_passed"] is True
    assert status["metrics"]["perplexity"] > 0
    # The timeline holds every stage, also those too short for a poll to catch (gating takes milliseconds).
    assert [mark["stage"] for mark in status["stages"]] == DELIVERED_TIMELINE
    assert [mark["at"] for mark in status["stages"]] == sorted(mark["at"] for mark in status["stages"])
    assert {"training", "delivered"} <= set(seen)  # the poller saw the long stages come and go
    training_workflow = f"training-job:{status['training_job_id']}"
    await replays(
        stack_settings,
        {"model-chain-delivered": done["workflow_id"], "training-job-in-chain": training_workflow},
    )

    event = await _delivered_event(stack_settings.kafka_bootstrap, status["model_version_id"])
    bucket, _, prefix = event["bundle_uri"].removeprefix("s3://").partition("/")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    async with s3_client(stack_settings) as s3:
        for item in event["files"]:
            target = bundle / item["path"]
            await s3.download_file(bucket, prefix + item["path"], str(target))
            assert target.stat().st_size == item["size_bytes"], item["path"]
            assert hashlib.sha256(target.read_bytes()).hexdigest() == item["sha256"], item["path"]
    names = {item["path"] for item in event["files"]}
    assert {"model.safetensors", "config.json", "README.md", "inference_config.yaml"} <= names

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    model = AutoModelForCausalLM.from_pretrained(bundle)
    inputs = tokenizer("What is the capital of France?", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]

    version = await platform.http["registry"].get(
        f"/model-projects/{platform.setup.model_project_id}/versions/{status['model_version_id']}",
        headers=TENANT,
    )
    assert version.json()["state"] == "delivered"
    assert version.json()["base_model_id"] == platform.setup.base_model_id  # lineage: the registered base
    assert [d["id"] for d in version.json()["dataset_versions"]] == [platform.setup.dataset_version_id]

    # The run held a scheduler allocation while it trained, and gave it back.
    job_id, allocation_id = status["training_job_id"], status["allocation_id"]
    job = await platform.http["training"].get(f"/training-jobs/{job_id}", headers=TENANT)
    assert job.json()["allocation_id"] == allocation_id
    allocation = await platform.http["scheduler"].get(f"/allocations/{allocation_id}", headers=TENANT)
    assert allocation.json()["state"] == "released", allocation.text
    assert allocation.json()["workload_id"] == status["training_job_id"]


async def test_a_failed_evaluation_stops_before_delivery_until_an_audited_override(
    platform: Platform, stack_settings: StackSettings
) -> None:
    strict = {"perplexity": {"max": 1.0}}  # no model of ours gets there
    started = await platform.http["training"].post(
        "/chains", json=chain_body(platform.setup, strict), headers=TENANT
    )
    assert started.status_code == 201, started.text
    chain_id = started.json()["chain_id"]

    waiting = await _reach(platform, chain_id, "awaiting_approval")
    version_id = waiting["status"]["model_version_id"]
    assert waiting["status"]["gate_passed"] is False
    versions = platform.http["registry"]
    path = f"/model-projects/{platform.setup.model_project_id}/versions/{version_id}"
    assert (await versions.get(path, headers=TENANT)).json()["state"] == "evaluation_failed"
    orders = await platform.http["delivery"].get(
        f"/delivery-orders?model_version_id={version_id}", headers=TENANT
    )
    assert orders.json() == [] or orders.json().get("items", []) == []  # nothing delivered

    carol = as_user("carol", "acme")  # a release approver of the tenant
    no_reason = await platform.http["training"].post(
        f"/chains/{chain_id}/approve-release", json={}, headers=carol
    )
    assert no_reason.status_code == 422
    in_her_name = await platform.http["training"].post(
        f"/chains/{chain_id}/approve-release",
        json={"approved_by": "carol", "reason": "alice says carol agreed"},
        headers=TENANT,
    )
    assert in_her_name.status_code == 403, in_her_name.text  # the approver is who signed in
    approved = await platform.http["training"].post(
        f"/chains/{chain_id}/approve-release",
        json={"reason": "known-good on the manual review set"},
        headers=carol,
    )
    assert approved.status_code == 202, approved.text

    done = await _reach(platform, chain_id, "delivered")
    assert done["status"]["approved_by"] == "carol"
    await replays(stack_settings, {"model-chain-approved-override": done["workflow_id"]})
    audit = (await versions.get(f"{path}/audit", headers=TENANT)).json()
    assert any(
        entry.get("approved_by") == "carol" and "manual review" in entry.get("reason", "")
        for entry in (audit if isinstance(audit, list) else audit.get("items", []))
    ), audit


async def test_cancelling_a_chain_stops_its_training_run_and_gives_back_the_allocation(
    platform: Platform, stack_settings: StackSettings
) -> None:
    training = platform.http["training"]
    body = chain_body(platform.setup, {"perplexity": {"max": 1e9}}, max_steps=5000)  # outlasts the test
    started = await training.post("/chains", json=body, headers=TENANT)
    assert started.status_code == 201, started.text
    chain_id = started.json()["chain_id"]

    running = await _reach(platform, chain_id, "training")
    job_id = running["status"]["training_job_id"]

    async def stepping() -> bool:
        job = (await training.get(f"/training-jobs/{job_id}", headers=TENANT)).json()
        return job["state"] == "running" and job["progress"]["step"] > 0

    await eventually(stepping, timeout_s=300, interval_s=0.5, what="the training run to take steps")
    cancelled = await training.post(
        f"/chains/{chain_id}/cancel", json={"reason": "wrong dataset"}, headers=TENANT
    )
    assert cancelled.status_code == 202, cancelled.text

    async def unwound() -> dict[str, Any]:
        view = await _stage(platform, chain_id)
        job = (await training.get(f"/training-jobs/{job_id}", headers=TENANT)).json()
        assert view["workflow_status"] == "CANCELED", (view, job["state"], job["progress"])
        return view

    view = await eventually(unwound, timeout_s=120, interval_s=0.5, what="the chain to be cancelled")
    status = view["status"]
    assert status["stage"] == "cancelled"
    assert (status["cancelled_by"], status["cancel_reason"]) == ("alice", "wrong dataset")
    assert [mark["stage"] for mark in status["stages"]][-2:] == ["training", "cancelled"]
    job = (await training.get(f"/training-jobs/{job_id}", headers=TENANT)).json()
    assert job["state"] == "cancelled"
    assert job["progress"]["step"] < 5000
    allocation = await platform.http["scheduler"].get(
        f"/allocations/{status['allocation_id']}", headers=TENANT
    )
    assert allocation.json()["state"] == "released", allocation.text  # it ran, and was given back

    again = await training.post(f"/chains/{chain_id}/cancel", headers=TENANT)
    assert again.status_code == 409
    assert "can no longer be cancelled" in again.json()["detail"]
    unknown = await training.post("/chains/no-such-chain/cancel", headers=TENANT)
    assert unknown.status_code == 404

    async def listed() -> dict[str, Any] | None:
        page = (await training.get("/chains?limit=200", headers=TENANT)).json()
        return next((item for item in page["items"] if item["chain_id"] == chain_id), None)

    summary = await eventually(listed, timeout_s=30, interval_s=0.5, what="the chain in the tenant's list")
    assert summary["workflow_status"] == "CANCELED" and summary["closed_at"] is not None
    assert summary["workflow_id"] == view["workflow_id"]
    assert (summary["model_name"], summary["started_by"]) == (body["model_name"], "alice")
    assert summary["model_project_id"] == platform.setup.model_project_id
    assert (view["model_name"], view["dataset_id"]) == (body["model_name"], platform.setup.dataset_id)
    first = (await training.get("/chains?limit=1", headers=TENANT)).json()
    assert len(first["items"]) == 1
    assert first["next_offset"] == 1 or first["items"][0]["chain_id"] == chain_id
    elsewhere = (await training.get("/chains?limit=200", headers=as_user("bob", "globex"))).json()
    assert chain_id not in [item["chain_id"] for item in elsewhere["items"]]  # another tenant's is unseen
    await replays(
        stack_settings,
        {"model-chain-cancelled": view["workflow_id"], "training-job-cancelled": f"training-job:{job_id}"},
    )


async def test_one_idempotency_key_starts_one_chain_however_often_and_at_once_it_is_sent(
    platform: Platform,
) -> None:
    training = platform.http["training"]
    body = chain_body(platform.setup, {"perplexity": {"max": 1e9}}, max_steps=5000)
    keyed = {**TENANT, "idempotency-key": f"retry-{uuid.uuid4().hex}"}
    answers = await asyncio.gather(*(training.post("/chains", json=body, headers=keyed) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], [a.text for a in answers]
    assert len({a.json()["chain_id"] for a in answers}) == 1
    chain_id = answers[0].json()["chain_id"]
    again = await training.post("/chains", json=body, headers=keyed)  # a retry after the answer was lost
    assert again.status_code == 200 and again.json()["chain_id"] == chain_id

    other = await training.post("/chains", json={**body, "model_name": "another"}, headers=keyed)
    assert other.status_code == 422 and "another request" in other.json()["detail"]
    page = (await training.get("/chains?limit=200", headers=TENANT)).json()
    assert [item["chain_id"] for item in page["items"]].count(chain_id) == 1
    unkeyed = [await training.post("/chains", json=body, headers=TENANT) for _ in range(2)]
    assert unkeyed[0].json()["chain_id"] != unkeyed[1].json()["chain_id"]  # without a key, two chains

    for started in (chain_id, *(u.json()["chain_id"] for u in unkeyed)):
        cancelled = await training.post(f"/chains/{started}/cancel", headers=TENANT)
        assert cancelled.status_code in (202, 409), cancelled.text
