"""What each service's events add to the lineage graph, and the OpenLineage events its runs become (pure:
the envelopes as the services publish them, built from the contracts' own event classes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from forge_contracts.envelope import EventEnvelope
from forge_contracts.events.dataset import (
    DatasetTaskCreated,
    DatasetTaskFailed,
    DatasetTaskSucceeded,
    DatasetVersionCreated,
)
from forge_contracts.events.registry import ModelVersionRegistered
from forge_contracts.events.training import TrainingJobCreated, TrainingJobSucceeded
from forge_registry.lineage.facts import Edge, facts
from forge_registry.lineage.openlineage import run_event

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RAW, DERIVED, TASK, JOB, MODEL, BASE, D1, P1, M1 = (str(uuid.uuid4()) for _ in range(9))


def _envelope(cls: Any, **data: Any) -> EventEnvelope:
    payload = cls.model_validate({"tenant_id": "acme", "occurred_at": AT, "actor": "alice", **data})
    return EventEnvelope(
        source="/forge/test",
        type=cls.event_type,
        subject=str(data.get(cls.aggregate_field)),
        time=AT,
        tenantid="acme",
        sequence=1,
        data=payload.model_dump(mode="json"),
    )


def test_a_derived_version_and_the_task_that_made_it_link_raw_data_to_its_output() -> None:
    created = facts(
        _envelope(
            DatasetVersionCreated,
            version_id=DERIVED,
            dataset_id=D1,
            version=2,
            source="derived",
            parent_version_id=RAW,
            operation="process",
        )
    )
    assert created.edges == [Edge(("dataset_version", RAW), ("dataset_version", DERIVED), "process")]
    raw = next(n for n in created.nodes if n.id == RAW)
    assert not raw.owned and raw.name is None  # only its own events name its tenant
    task = facts(
        _envelope(
            DatasetTaskCreated,
            task_id=TASK,
            dataset_id=D1,
            kind="process",
            input_version_id=RAW,
            parameters={},
        )
    )
    assert task.edges == [Edge(("dataset_version", RAW), ("dataset_task", TASK), "input")]
    (start,) = task.runs
    assert (start.state, start.job, start.inputs) == ("START", "dataset.process", [("dataset_version", RAW)])
    done = facts(
        _envelope(
            DatasetTaskSucceeded,
            task_id=TASK,
            dataset_id=D1,
            kind="process",
            from_state="running",
            output_version_id=DERIVED,
            duration_s=3.0,
        )
    )
    assert done.edges == [Edge(("dataset_task", TASK), ("dataset_version", DERIVED), "output")]
    assert done.runs[0].inputs_of == ("dataset_task", TASK)  # its inputs are read from the graph
    failed = facts(
        _envelope(
            DatasetTaskFailed,
            task_id=TASK,
            dataset_id=D1,
            kind="process",
            from_state="running",
            error="a rule raised",
        )
    )
    assert (failed.runs[0].state, failed.runs[0].error) == ("FAIL", "a rule raised")


def test_training_and_registration_link_data_and_base_model_to_the_model_version() -> None:
    created = facts(
        _envelope(
            TrainingJobCreated,
            job_id=JOB,
            project_id=P1,
            kind="fine_tune",
            name="sft",
            dataset_version_ids=[DERIVED],
            base_model_id=BASE,
            method="lora",
            resources={"cpu_cores": 1, "memory_bytes": 2**30},
        )
    )
    assert set(created.edges) == {
        Edge(("dataset_version", DERIVED), ("training_job", JOB), "input"),
        Edge(("base_model", BASE), ("training_job", JOB), "base_model"),
    }
    registered = facts(
        _envelope(
            ModelVersionRegistered,
            version_id=MODEL,
            model_id=M1,
            model_name="demo",
            version=1,
            artifact_uri="s3://models/acme/m1/",
            framework="transformers",
            source="training",
            training_job_id=JOB,
            dataset_version_ids=[DERIVED],
        )
    )
    assert registered.edges == [Edge(("training_job", JOB), ("model_version", MODEL), "produced")]
    assert next(n for n in registered.nodes if n.id == MODEL).name == "demo v1"


def test_runs_become_openlineage_run_events_with_forge_names() -> None:
    succeeded = facts(
        _envelope(
            TrainingJobSucceeded,
            job_id=JOB,
            project_id=P1,
            kind="fine_tune",
            from_state="running",
            model_uri="s3://models/acme/j1/final/",
            metrics={},
            duration_s=10.0,
        )
    )
    (run,) = succeeded.runs
    event = run_event(run, "acme", succeeded.at, [("dataset_version", DERIVED)])
    assert event["eventType"] == "COMPLETE" and event["run"]["runId"] == JOB
    assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
    assert event["job"]["namespace"] == "forge://acme" and event["job"]["name"] == "training.job"
    assert event["job"]["facets"]["jobType"]["integration"] == "FORGE"
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        ("forge://acme", f"dataset-versions/{DERIVED}")
    ]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [("s3://models", "/acme/j1/final")]
    registered = facts(
        _envelope(
            ModelVersionRegistered,
            version_id=MODEL,
            model_id=M1,
            model_name="demo",
            version=1,
            artifact_uri="s3://models/acme/j1/final/",
            framework="transformers",
            source="training",
            training_job_id=JOB,
        )
    )
    register = run_event(registered.runs[0], "acme", registered.at, [])
    uuid.UUID(register["run"]["runId"])  # a Forge name mapped to a UUID, the same every time
    assert [(d["namespace"], d["name"]) for d in register["outputs"]] == [
        ("forge://acme", f"model-versions/{MODEL}")
    ]
    failed = facts(
        _envelope(
            DatasetTaskFailed, task_id=TASK, dataset_id=D1, kind="split", from_state="running", error="boom"
        )
    )
    assert (
        run_event(failed.runs[0], "acme", failed.at, [])["run"]["facets"]["errorMessage"]["message"] == "boom"
    )
