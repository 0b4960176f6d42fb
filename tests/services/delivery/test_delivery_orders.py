"""Delivery orders on the real stack: a bundle is packed, verified by what users and the inference
platform see (HTTP, events on Kafka, objects in MinIO, the shared folder), and failures deliver nothing.
An order names a model version by id; the registry says whether it may be delivered and where its files
are."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import Counter
from typing import Any

import pytest
import yaml
from forge_contracts.activities.delivery import DeliverModel
from forge_contracts.envelope import uuid7
from forge_contracts.events.delivery import ModelDelivered
from forge_delivery import service
from forge_delivery.pipeline import run_order
from forge_delivery.schemas import CreateDeliveryOrder
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.services.delivery.conftest import (
    ACME,
    GLOBEX,
    MODEL_FILES,
    DeliveryService,
    EventLog,
    order_request,
)
from tests.services.delivery.workflows import DeliverTwice

BUNDLE_FILES = {
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "README.md",
    "inference_config.yaml",
    "manifest.json",
    "checksums.sha256",
}
ORDER_EVENTS = [
    "forge.delivery.order.created.v1",
    "forge.delivery.order.packaging_started.v1",
    "forge.delivery.order.packaged.v1",
    "forge.delivery.order.publishing_started.v1",
    "forge.delivery.model.delivered.v1",
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def deliver(delivery: DeliveryService, **overrides: object) -> dict[str, Any]:
    version = await delivery.version()
    response = await delivery.http.post(
        "/delivery-orders", json=order_request(version["id"], **overrides), headers=ACME
    )
    assert response.status_code == 202, response.text
    return await delivery.settled(response.json()["id"])


async def test_an_order_delivers_a_verified_bundle_and_announces_it(
    delivery: DeliveryService, events: EventLog
) -> None:
    version = await delivery.version()
    request = order_request(version["id"])
    response = await delivery.http.post("/delivery-orders", json=request, headers=ACME)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["state"] == "created"
    assert set(created["progress"]) == {"stage", "files_done", "files_total", "bytes_done", "bytes_total"}

    order = await delivery.settled(created["id"])
    assert order["state"] == "delivered", order["error"]
    progress = order["progress"]
    assert progress["files_done"] == progress["files_total"] == len(BUNDLE_FILES)
    assert progress["bytes_done"] == progress["bytes_total"] > 0

    seen = await events.of(created["id"], count=len(ORDER_EVENTS))
    assert [e.type for e in seen] == ORDER_EVENTS
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
    delivered = ModelDelivered.from_envelope(seen[-1])
    name = version["project_name"]
    bundle_uri = f"s3://{delivery.bucket}/acme/{name}/1/"
    assert delivered.bundle_uri == order["bundle_uri"] == bundle_uri
    assert (delivered.model_name, delivered.model_version, delivered.tenant_id) == (name, 1, "acme")
    assert (delivered.model_version_id, delivered.model_id) == (version["id"], version["project_id"])
    assert order["source_uri"] == version["artifact_uri"]  # the registry's, never the caller's
    assert {f.path for f in delivered.files} == BUNDLE_FILES
    assert [f.model_dump() for f in delivered.files] == order["files"]

    for file in delivered.files:
        data = await delivery.read(bundle_uri, file.path)
        assert (len(data), sha256(data)) == (file.size_bytes, file.sha256), file.path
    assert await delivery.read(bundle_uri, "model.safetensors") == MODEL_FILES["model.safetensors"]
    assert sorted(await delivery.keys(bundle_uri)) == sorted(BUNDLE_FILES)  # training_args.bin stays out

    checksums = (await delivery.read(bundle_uri, "checksums.sha256")).decode().splitlines()
    listed = {path: digest for digest, path in (line.split("  ", 1) for line in checksums)}
    expected = {f.path: f.sha256 for f in delivered.files if f.path != "checksums.sha256"}
    assert listed == expected


async def test_the_model_card_and_inference_config_describe_the_model(delivery: DeliveryService) -> None:
    order = await deliver(delivery)
    assert order["state"] == "delivered", order["error"]

    card = (await delivery.read(order["bundle_uri"], "README.md")).decode()
    for section in (
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Evaluation results",
        "## Limitations",
        "## How to load",
    ):
        assert section in card
    assert "| bleu | 0.2731 |" in card
    assert "| rougeL | 0.4125 |" in card
    assert "| perplexity | 12.5 |" in card
    assert "sha256:" + "ab" * 32 in card
    assert "| lora_rank | 8 |" in card
    assert "AutoModelForCausalLM.from_pretrained" in card
    assert "license: apache-2.0" in card

    config = yaml.safe_load(await delivery.read(order["bundle_uri"], "inference_config.yaml"))
    assert config["framework"] == "transformers"
    assert config["generation"]["max_new_tokens"] == 128
    assert config["generation"]["temperature"] == 0.2
    assert config["runtime"] == {"dtype": "bfloat16", "device": "cpu"}
    assert config["model"]["weights"] == ["model.safetensors"]

    manifest = json.loads(await delivery.read(order["bundle_uri"], "manifest.json"))
    assert manifest["model_version_id"] == order["model_version_id"]
    listed = {f["path"] for f in manifest["files"]}
    assert listed == BUNDLE_FILES - {"manifest.json", "checksums.sha256"}


async def test_the_shared_folder_mirror_holds_the_same_files(delivery: DeliveryService) -> None:
    order = await deliver(delivery)
    assert order["state"] == "delivered", order["error"]

    folder = delivery.shared_dir / "acme" / order["model_name"] / "1"
    assert order["shared_path"] == str(folder)
    assert {p.name for p in folder.iterdir()} == BUNDLE_FILES
    for file in order["files"]:
        data = (folder / file["path"]).read_bytes()
        assert (len(data), sha256(data)) == (file["size_bytes"], file["sha256"]), file["path"]
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


async def test_a_missing_source_file_fails_the_order_and_delivers_nothing(
    delivery: DeliveryService, events: EventLog
) -> None:
    without_tokenizer = {k: v for k, v in MODEL_FILES.items() if k != "tokenizer.json"}
    version = await delivery.version(without_tokenizer)
    response = await delivery.http.post("/delivery-orders", json=order_request(version["id"]), headers=ACME)
    assert response.status_code == 202, response.text

    order = await delivery.settled(response.json()["id"])
    assert order["state"] == "failed"
    assert order["failed_stage"] == "packaging"
    # What is missing, and nothing of what else is stored there.
    assert order["error"] == (
        f"source {version['artifact_uri']} is missing required file(s): "
        "tokenizer.json or tokenizer.model or vocab.json or vocab.txt"
    )
    assert order["files"] == []

    seen = await events.of(order["id"], count=3)
    assert [e.type for e in seen] == [
        "forge.delivery.order.created.v1",
        "forge.delivery.order.packaging_started.v1",
        "forge.delivery.order.failed.v1",
    ]
    assert [e.sequence for e in seen] == [1, 2, 3]
    assert seen[-1].data["error"] == order["error"]
    assert await delivery.keys(order["bundle_uri"]) == []
    assert not (delivery.shared_dir / "acme" / order["model_name"]).exists()


async def test_another_tenant_cannot_see_or_cancel_an_order(delivery: DeliveryService) -> None:
    order = await deliver(delivery)

    assert (await delivery.http.get(f"/delivery-orders/{order['id']}", headers=GLOBEX)).status_code == 404
    cancel = await delivery.http.post(f"/delivery-orders/{order['id']}/cancel", headers=GLOBEX)
    assert cancel.status_code == 404
    listing = await delivery.http.get("/delivery-orders", headers=GLOBEX)
    assert listing.json()["items"] == []
    mine = await delivery.http.get("/delivery-orders", headers=ACME)
    assert [o["id"] for o in mine.json()["items"]] == [order["id"]]


async def test_cancelling_a_delivered_order_is_rejected_and_changes_nothing(
    delivery: DeliveryService,
) -> None:
    order = await deliver(delivery)
    assert order["state"] == "delivered", order["error"]

    response = await delivery.http.post(f"/delivery-orders/{order['id']}/cancel", headers=ACME)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["current_state"] == "delivered"
    after = (await delivery.http.get(f"/delivery-orders/{order['id']}", headers=ACME)).json()
    assert (after["state"], after["sequence"]) == ("delivered", order["sequence"])


async def test_a_cancelled_order_is_never_packed(delivery: DeliveryService, events: EventLog) -> None:
    version = await delivery.version()
    runtime = delivery.runtime
    order, _ = await service.create_order(
        runtime.db,
        runtime.delivery_settings,
        runtime.registry,
        tenant="acme",
        actor="alice",
        request=CreateDeliveryOrder.model_validate(order_request(version["id"])),
    )

    response = await delivery.http.post(
        f"/delivery-orders/{order.id}/cancel", json={"reason": "wrong version"}, headers=ACME
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    assert (await run_order(runtime.context, order.id)).state == "cancelled"

    seen = await events.of(order.id, count=2)
    assert [(e.type, e.sequence) for e in seen] == [
        ("forge.delivery.order.created.v1", 1),
        ("forge.delivery.order.cancelled.v1", 2),
    ]
    assert seen[-1].data["reason"] == "wrong version"
    assert await delivery.keys(order.bundle_uri) == []


async def test_bad_input_is_rejected_with_the_field_named(delivery: DeliveryService) -> None:
    version = await delivery.version()

    with_a_location = await delivery.http.post(
        "/delivery-orders",
        json={**order_request(version["id"]), "source_uri": "s3://forge-models/globex/secret/"},
        headers=ACME,
    )
    assert with_a_location.status_code == 422  # the registry says where a version's files are
    assert "source_uri" in with_a_location.json()["detail"]

    escaping = await delivery.http.post(
        "/delivery-orders", json=order_request(version["id"], model_name="../../etc"), headers=ACME
    )
    assert escaping.status_code == 422
    assert "model_name" in escaping.json()["detail"]

    not_an_id = await delivery.http.post(
        "/delivery-orders", json=order_request("s3://forge-models/acme/x/"), headers=ACME
    )
    assert not_an_id.status_code == 422
    assert "model_version_id" in not_an_id.json()["detail"]

    no_token = await delivery.http.post("/delivery-orders", json=order_request(version["id"]))
    assert no_token.status_code == 401

    listing = await delivery.http.get("/delivery-orders", headers=ACME)
    assert listing.json()["items"] == []


@pytest.mark.parametrize("until", ["registered", "evaluation_failed"])
async def test_an_order_for_a_version_the_registry_has_not_released_is_refused(
    delivery: DeliveryService, until: str
) -> None:
    version = await delivery.version(until=until)

    response = await delivery.http.post("/delivery-orders", json=order_request(version["id"]), headers=ACME)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert f"is {until!r}, not released" in response.json()["detail"]
    assert (await delivery.http.get("/delivery-orders", headers=ACME)).json()["items"] == []
    assert await delivery.keys(f"s3://{delivery.bucket}/acme/") == []


async def test_an_order_for_an_unknown_version_or_another_tenants_is_not_found(
    delivery: DeliveryService,
) -> None:
    theirs = await delivery.version(as_=GLOBEX)

    unknown = await delivery.http.post("/delivery-orders", json=order_request(uuid7()), headers=ACME)
    other_tenants = await delivery.http.post(
        "/delivery-orders", json=order_request(theirs["id"]), headers=ACME
    )

    assert unknown.status_code == other_tenants.status_code == 404
    assert theirs["artifact_uri"] not in other_tenants.text
    assert (await delivery.http.get("/delivery-orders", headers=ACME)).json()["items"] == []
    assert await delivery.keys(f"s3://{delivery.bucket}/acme/") == []


async def test_a_version_released_by_an_approved_override_is_delivered(delivery: DeliveryService) -> None:
    version = await delivery.version(until="overridden")
    assert version["state"] == "released"

    response = await delivery.http.post("/delivery-orders", json=order_request(version["id"]), headers=ACME)

    assert response.status_code == 202, response.text
    assert (await delivery.settled(response.json()["id"]))["state"] == "delivered"


async def test_what_the_caller_says_about_the_version_must_match_the_registry(
    delivery: DeliveryService,
) -> None:
    version = await delivery.version()

    wrong_number = await delivery.http.post(
        "/delivery-orders", json=order_request(version["id"], model_version=7), headers=ACME
    )
    wrong_project = await delivery.http.post(
        "/delivery-orders", json=order_request(version["id"], model_id=uuid7()), headers=ACME
    )

    assert wrong_number.status_code == wrong_project.status_code == 422
    assert "model_version" in wrong_number.json()["detail"]
    assert "model_id" in wrong_project.json()["detail"]
    named = await delivery.http.post(
        "/delivery-orders",
        json=order_request(version["id"], model_id=version["project_id"], model_version=1, model_name="bot"),
        headers=ACME,
    )
    assert named.status_code == 202, named.text
    assert named.json()["bundle_uri"] == f"s3://{delivery.bucket}/acme/bot/1/"


async def test_a_version_deprecated_after_the_order_was_created_is_not_packed(
    delivery: DeliveryService, events: EventLog
) -> None:
    version = await delivery.version()
    runtime = delivery.runtime
    order, _ = await service.create_order(
        runtime.db,
        runtime.delivery_settings,
        runtime.registry,
        tenant="acme",
        actor="alice",
        request=CreateDeliveryOrder.model_validate(order_request(version["id"])),
    )
    await delivery.registry_post(version, "deprecate", {"reason": "a regression was found"})

    ran = await run_order(runtime.context, order.id)

    assert (ran.state, ran.failed_stage) == ("failed", "created")
    assert ran.error is not None and "'deprecated', not released" in ran.error
    seen = await events.of(order.id, count=2)
    assert [e.type for e in seen] == ["forge.delivery.order.created.v1", "forge.delivery.order.failed.v1"]
    assert await delivery.keys(order.bundle_uri) == []


async def test_a_second_live_order_for_the_same_version_is_a_conflict(delivery: DeliveryService) -> None:
    version = await delivery.version()
    request = order_request(version["id"])
    first = await delivery.http.post("/delivery-orders", json=request, headers=ACME)
    assert first.status_code == 202, first.text

    again = await delivery.http.post("/delivery-orders", json=request, headers=ACME)

    assert again.status_code == 409
    assert first.json()["id"] in again.json()["detail"]


async def test_concurrent_orders_with_one_idempotency_key_all_get_the_first_order(
    delivery: DeliveryService,
) -> None:
    version = await delivery.version()
    headers = ACME | {"idempotency-key": f"order-once-{uuid.uuid4().hex}"}
    request = order_request(version["id"])

    responses = await asyncio.gather(
        *(delivery.http.post("/delivery-orders", json=request, headers=headers) for _ in range(30))
    )

    assert Counter(r.status_code for r in responses) == {202: 1, 200: 29}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = await delivery.http.get(
        "/delivery-orders", params={"model_version_id": version["id"]}, headers=ACME
    )
    assert [o["id"] for o in listed.json()["items"]] == [responses[0].json()["id"]]

    other_request = await delivery.http.post(
        "/delivery-orders", json={**request, "inference": {"temperature": 0.9}}, headers=headers
    )
    assert other_request.status_code == 422
    assert other_request.headers["content-type"] == "application/problem+json"
    assert "idempotency key" in other_request.json()["detail"]
    assert (await delivery.settled(responses[0].json()["id"]))["state"] == "delivered"
    replay = await delivery.http.post("/delivery-orders", json=request, headers=headers)
    assert (replay.status_code, replay.json()["state"]) == (200, "delivered")


async def test_the_deliver_model_activity_is_idempotent_and_packs_the_registrys_artifact(
    delivery: DeliveryService, events: EventLog
) -> None:
    version = await delivery.version()
    request = DeliverModel.model_validate(
        {
            "tenant_id": "acme",
            "actor": "workflow",
            "model_id": version["project_id"],
            "model_name": version["project_name"],
            "model_version": version["version"],
            # A location a caller still sends is ignored: the bundle comes from the registry's artifact.
            "source_uri": "s3://forge-models/globex/secret/",
            **order_request(version["id"]),
        }
    )
    runtime = delivery.runtime
    assert runtime.temporal is not None

    results = await runtime.temporal.execute_workflow(
        DeliverTwice.run,
        args=[request, runtime.task_queue],
        id=f"deliver-{uuid.uuid4().hex}",
        task_queue=runtime.task_queue,
    )

    first, second = results
    assert first == second
    assert first.state == "delivered"
    assert first.manifest_uri == first.bundle_uri + "manifest.json"
    assert {f.path for f in first.files} == BUNDLE_FILES
    assert first.shared_path == str(delivery.shared_dir / "acme" / request.model_name / "1")
    assert await delivery.read(first.bundle_uri, "model.safetensors") == MODEL_FILES["model.safetensors"]
    orders = await delivery.http.get(
        "/delivery-orders", params={"model_version_id": request.model_version_id}, headers=ACME
    )
    assert [o["id"] for o in orders.json()["items"]] == [first.order_id]
    assert orders.json()["items"][0]["source_uri"] == version["artifact_uri"]
    seen = await events.of(first.order_id, count=len(ORDER_EVENTS))
    assert [e.type for e in seen] == ORDER_EVENTS  # packed once: one event per state change


async def test_the_deliver_model_activity_refuses_a_version_that_is_not_released(
    delivery: DeliveryService,
) -> None:
    version = await delivery.version(until="evaluation_failed")
    request = DeliverModel.model_validate(
        {
            "tenant_id": "acme",
            "model_id": version["project_id"],
            "model_name": version["project_name"],
            "model_version": version["version"],
            **order_request(version["id"]),
        }
    )
    runtime = delivery.runtime
    assert runtime.temporal is not None

    with pytest.raises(WorkflowFailureError) as failed:
        await runtime.temporal.execute_workflow(
            DeliverTwice.run,
            args=[request, runtime.task_queue],
            id=f"deliver-{uuid.uuid4().hex}",
            task_queue=runtime.task_queue,
        )

    cause = failed.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("NotDeliverable", True)
    assert "not released" in cause.message
    assert (await delivery.http.get("/delivery-orders", headers=ACME)).json()["items"] == []
