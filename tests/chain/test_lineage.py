"""Lineage as one graph across services, on the real stack: a raw version is processed into a derived one,
the chain trains on that, registers, gates and delivers; the registry's lineage graph, built from every
service's Kafka events alone, answers both ways ("which models used data derived from raw version X",
"what raw data is in this model"), and each run reaches an OpenLineage endpoint and topic as a run event."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from forge_cli.demo import DemoInputs, chain_body, follow_chain, start_chain
from forge_kit.stack_env import StackSettings

from tests.chain.conftest import TENANT, Platform, running_platform
from tests.identity import as_user
from tests.waiting import eventually


class Received(list[dict[str, Any]]):
    """The OpenLineage events an HTTP endpoint (as Marquez's `/api/v1/lineage`) received."""


@pytest.fixture
def openlineage_endpoint() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/lineage", received
    finally:
        server.shutdown()


@pytest.fixture
async def platform(
    stack_settings: StackSettings,
    s3_bucket: str,
    inputs: DemoInputs,
    tmp_path: Path,
    openlineage_endpoint: tuple[str, Received],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    """The chain's services, the registry keeping the lineage graph (from the topics' start, under a group
    of its own) and sending OpenLineage events to the endpoint and a topic of this test."""
    monkeypatch.setenv("FORGE_LINEAGE_CONSUMER", "true")
    monkeypatch.setenv("FORGE_LINEAGE_GROUP", f"test-lineage-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("FORGE_LINEAGE_START", "earliest")
    monkeypatch.setenv("FORGE_LINEAGE_OPENLINEAGE_URL", openlineage_endpoint[0])
    monkeypatch.setenv("FORGE_LINEAGE_OPENLINEAGE_TOPIC", f"test.openlineage.{uuid.uuid4().hex[:8]}")
    async with running_platform(stack_settings, s3_bucket, inputs, tmp_path / "jobs") as running:
        yield running


async def _graph(platform: Platform, node_kind: str, node: str, **params: Any) -> dict[str, Any]:
    answer = await platform.http["registry"].get(
        f"/lineage/{node_kind}/{node}", params=params, headers=TENANT
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_the_lineage_graph_answers_both_ways_across_services_and_runs_become_openlineage_events(
    platform: Platform,
    stack_settings: StackSettings,
    openlineage_endpoint: tuple[str, Received],
) -> None:
    setup, http = platform.setup, platform.http
    raw = setup.dataset_version_id
    processed = await http["dataset"].post(
        f"/datasets/{setup.dataset_id}/versions/{raw}/process",
        json={
            "ops": [{"op": "normalize", "fields": ["instruction"]}],
            "project_id": setup.scheduler_project_id,
        },
        headers=TENANT,
    )
    assert processed.status_code == 202, processed.text
    task_id = processed.json()["id"]

    async def derived() -> str | None:
        task = (
            await http["dataset"].get(f"/datasets/{setup.dataset_id}/tasks/{task_id}", headers=TENANT)
        ).json()
        assert task["state"] not in ("failed", "cancelled"), task["error"]
        return task["output_version_id"] if task["state"] == "succeeded" else None

    derived_id = await eventually(derived, timeout_s=240, interval_s=0.5, what="the processing task")
    body = chain_body(setup, {"perplexity": {"max": 1e9}})
    body["dataset_version_id"] = derived_id
    started = await start_chain(http["training"], setup, body)
    done = await follow_chain(http["training"], setup.caller, started["chain_id"], timeout_s=600)
    status = done["status"]
    model, job = status["model_version_id"], status["training_job_id"]

    async def delivered_in_graph() -> dict[str, Any] | None:
        graph = await _graph(platform, "dataset_version", raw, direction="downstream")
        kinds = {node["kind"] for node in graph["nodes"]}
        return graph if "delivery_order" in kinds else None

    downstream = await eventually(
        delivered_in_graph, timeout_s=120, interval_s=1.0, what="the delivery in the graph"
    )
    nodes = {(n["kind"], n["id"]): n for n in downstream["nodes"]}
    assert nodes[("dataset_task", task_id)]["distance"] == 1
    assert nodes[("dataset_version", derived_id)]["attributes"]["operation"] == "process"
    assert nodes[("training_job", job)]["distance"] == 2  # raw -> derived (process) -> the job
    assert nodes[("model_version", model)]["attributes"]["state"] == "delivered"
    edges = {(e["source_id"], e["target_id"], e["relation"]) for e in downstream["edges"]}
    assert {(raw, task_id, "input"), (task_id, derived_id, "output"), (raw, derived_id, "process")} <= edges
    assert {(derived_id, job, "input"), (job, model, "produced")} <= edges

    # "Which models used data derived from raw version X?"
    models = await _graph(platform, "dataset_version", raw, direction="downstream", kind="model_version")
    assert [(n["kind"], n["id"]) for n in models["nodes"]] == [
        ("dataset_version", raw),
        ("model_version", model),
    ]
    # "What raw data is in this model?": upstream, the dataset versions nothing else produced
    data = await _graph(platform, "model_version", model, direction="upstream", kind="dataset_version")
    versions = {n["id"]: n for n in data["nodes"] if n["kind"] == "dataset_version"}
    assert set(versions) == {raw, derived_id}
    produced = {e["target_id"] for e in data["edges"] if e["target_kind"] == "dataset_version"}
    assert [v for v in versions if v not in produced] == [raw]
    assert versions[raw]["attributes"]["source"] == "upload" and versions[raw]["distance"] < 0
    upstream = await _graph(platform, "model_version", model, direction="upstream", kind="base_model")
    assert [n["id"] for n in upstream["nodes"] if n["kind"] == "base_model"] == [setup.base_model_id]

    stranger = as_user("mallory", "globex")
    hidden = await http["registry"].get(f"/lineage/model_version/{model}", headers=stranger)
    assert hidden.status_code == 404
    unknown = await http["registry"].get(f"/lineage/cluster/{model}", headers=TENANT)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(
        "application/problem+json"
    )

    _, received = openlineage_endpoint

    def run_of(run_id: str, state: str) -> dict[str, Any] | None:
        return next((e for e in received if e["run"]["runId"] == run_id and e["eventType"] == state), None)

    async def all_runs_sent() -> bool:
        return all(
            run_of(run, state)
            for run, state in (
                (task_id, "START"),
                (task_id, "COMPLETE"),
                (job, "START"),
                (job, "COMPLETE"),
            )
        ) and any(e["job"]["name"] == "delivery.deliver" and e["eventType"] == "COMPLETE" for e in received)

    await eventually(all_runs_sent, timeout_s=60, interval_s=0.5, what="the OpenLineage events")
    process_done = run_of(task_id, "COMPLETE")
    assert process_done is not None and process_done["job"] == {
        **process_done["job"],
        "namespace": "forge://acme",
        "name": "dataset.process",
    }
    assert [i["name"] for i in process_done["inputs"]] == [f"dataset-versions/{raw}"]
    assert [o["name"] for o in process_done["outputs"]] == [f"dataset-versions/{derived_id}"]
    training = run_of(job, "START")
    assert training is not None
    assert {i["name"] for i in training["inputs"]} == {
        f"dataset-versions/{derived_id}",
        f"base-models/{setup.base_model_id}",
    }
    assert all(e["schemaURL"].startswith("https://openlineage.io/spec/") for e in received)

    consumer = AIOKafkaConsumer(
        os.environ["FORGE_LINEAGE_OPENLINEAGE_TOPIC"],
        bootstrap_servers=stack_settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:

        async def on_topic() -> bool:
            batch = await consumer.getmany(timeout_ms=1000)
            return any(
                json.loads(r.value)["run"]["runId"] == job and r.key == job.encode()
                for records in batch.values()
                for r in records
            )

        await eventually(
            on_topic, timeout_s=60, interval_s=0.1, what="the training run on the OpenLineage topic"
        )
    finally:
        await consumer.stop()
