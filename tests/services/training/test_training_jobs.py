"""Fine-tuning jobs end to end: the API, the Temporal workflow, the real training runtime as a child
process, MinIO and the events on Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid

import pytest
from forge_contracts.activities.training import WORKFLOW, JobRef, TrainingJobInput
from forge_kit.errors import Unavailable
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_training import service
from forge_training.activities import TrainingActivities
from forge_training.schemas import CreateTrainingJob
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from tests.services.training.conftest import (
    ACME,
    GLOBEX,
    EventLog,
    Inputs,
    LocalInputs,
    Published,
    TrainingService,
    job_body,
    sample_files,
)
from tests.waiting import eventually


async def _keys(stack_settings: StackSettings, bucket: str, prefix: str) -> set[str]:
    async with s3_client(stack_settings) as s3:
        listing = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"][len(prefix) :] for item in listing.get("Contents", [])}


async def test_a_fine_tuning_job_runs_to_succeeded_with_metrics_logs_and_a_merged_model(
    training: TrainingService, inputs: Inputs, events: EventLog, stack_settings: StackSettings
) -> None:
    created = await training.create(job_body(inputs))
    assert created["state"] == "pending"

    job = await training.wait_state(created["id"], "succeeded")

    assert job["progress"] == {"step": 12, "total_steps": 12, "percent": 100.0, "eta_s": 0.0}
    assert (job["dataset_id"], job["dataset_version_id"]) == (inputs.data.dataset_id, inputs.data.version_id)
    assert (job["base_model_id"], job["base_model_uri"]) == (inputs.base_model_id, inputs.base_model_uri)
    assert job["outputs"]["model_uri"] == f"s3://{training.bucket}/acme/{job['id']}/merged/"
    assert job["outputs"]["last_checkpoint_step"] == 12
    assert {"train_loss", "eval_loss"} <= set(job["latest_metrics"])
    metrics = await training.http.get(
        f"/training-jobs/{job['id']}/metrics", params={"name": "train_loss"}, headers=ACME
    )
    [series] = metrics.json()["series"]
    steps = [point["step"] for point in series["points"]]
    losses = [point["value"] for point in series["points"]]
    assert series["name"] == "train_loss" and steps == list(range(1, 13))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    lines = await training.logs(job["id"])
    assert any("training runtime started" in line["message"] for line in lines)
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    newer = await training.logs(job["id"], after=lines[-2]["seq"])
    assert [line["seq"] for line in newer] == [lines[-1]["seq"]]
    merged = await _keys(stack_settings, training.bucket, f"acme/{job['id']}/merged/")
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= merged
    checkpoints = await _keys(stack_settings, training.bucket, f"acme/{job['id']}/checkpoints/")
    assert {"step-4/trainer_state.pt", "step-8/trainer_state.pt", "step-12/trainer_state.pt"} <= checkpoints

    published = await events.of(job["id"], 4)
    assert [(e.type, e.sequence) for e in published] == [
        ("forge.training.job.created.v1", 1),
        ("forge.training.job.queued.v1", 2),
        ("forge.training.job.started.v1", 3),
        ("forge.training.job.succeeded.v1", 4),
    ]
    succeeded = published[-1].data
    assert succeeded["model_uri"] == job["outputs"]["model_uri"]
    assert succeeded["steps"] == 12 and succeeded["metrics"]["train_loss"] == pytest.approx(losses[-1])


async def test_cancelling_a_running_job_kills_the_runtime_and_ends_it_cancelled(
    training: TrainingService, inputs: Inputs, events: EventLog
) -> None:
    body = job_body(inputs, hyperparameters={"max_steps": 20000, "eval_every_steps": None})
    created = await training.create(body)
    await training.wait_state(created["id"], "running", timeout_s=30)

    async def runtime_pid() -> int | None:
        for line in await training.logs(created["id"]):
            if match := re.search(r"training runtime started \(pid (\d+)", line["message"]):
                return int(match[1])
        return None

    pid = await eventually(runtime_pid, what="the runtime process started")
    os.kill(pid, 0)  # alive

    response = await training.http.post(
        f"/training-jobs/{created['id']}/cancel", json={"reason": "wrong data"}, headers=ACME
    )

    assert response.status_code == 202, response.text
    job = await training.wait_state(created["id"], "cancelled", timeout_s=30)
    assert job["progress"]["step"] < 20000 and job["outputs"]["model_uri"] is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    published = await events.of(job["id"], 4)
    assert [e.type for e in published][-1] == "forge.training.job.cancelled.v1"
    assert published[-1].data["actor"] == "alice" and published[-1].data["reason"] == "wrong data"
    assert [e.sequence for e in published] == [1, 2, 3, 4]


async def _version_whose_train_file_is_gone(
    inputs: Inputs, local_inputs: LocalInputs, stack_settings: StackSettings
) -> Published:
    """A published version whose training file was then removed from object storage."""
    files = sample_files(local_inputs)
    unique = {"instruction": f"Repeat {uuid.uuid4().hex}.", "input": "", "output": "ok"}
    files["train.jsonl"] += (json.dumps(unique) + "\n").encode()
    published = await inputs.catalogue.publish(ACME, files)
    async with s3_client(stack_settings) as s3:
        await s3.delete_object(Bucket=inputs.bucket, Key=published.keys["train.jsonl"])
    return published


def _on(version: Published) -> dict[str, str]:
    return {"dataset_id": version.dataset_id, "version_id": version.version_id}


async def test_a_job_whose_dataset_file_is_missing_fails_with_a_clear_error_and_cannot_be_cancelled(
    training: TrainingService,
    inputs: Inputs,
    local_inputs: LocalInputs,
    events: EventLog,
    stack_settings: StackSettings,
) -> None:
    gone = await _version_whose_train_file_is_gone(inputs, local_inputs, stack_settings)
    created = await training.create(job_body(inputs, dataset=_on(gone)))

    job = await training.wait_state(created["id"], "failed", timeout_s=30)

    assert f"{gone.keys['train.jsonl']} does not exist" in job["error"]
    published = await events.of(job["id"], 4)
    assert [(e.type.split(".")[3], e.sequence) for e in published] == [
        ("created", 1),
        ("queued", 2),
        ("started", 3),
        ("failed", 4),
    ]
    assert published[-1].data["error"] == job["error"]
    refused = await training.http.post(f"/training-jobs/{job['id']}/cancel", headers=ACME)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["current_state"] == "failed"
    assert (await training.get(job["id"]))["state"] == "failed"
    assert [e.sequence for e in await events.of(job["id"], 4)] == [1, 2, 3, 4]


async def test_another_tenants_job_is_not_found(
    training: TrainingService, inputs: Inputs, local_inputs: LocalInputs, stack_settings: StackSettings
) -> None:
    gone = await _version_whose_train_file_is_gone(inputs, local_inputs, stack_settings)
    created = await training.create(job_body(inputs, dataset=_on(gone)))  # fails fast: nothing to train on
    job_id = created["id"]

    for path in (
        f"/training-jobs/{job_id}",
        f"/training-jobs/{job_id}/metrics",
        f"/training-jobs/{job_id}/logs",
    ):
        response = await training.http.get(path, headers=GLOBEX)
        assert response.status_code == 404, path
    cancel = await training.http.post(f"/training-jobs/{job_id}/cancel", headers=GLOBEX)
    assert cancel.status_code == 404
    theirs = await training.http.get("/training-jobs", headers=GLOBEX)
    assert theirs.json()["items"] == []
    ours = await training.http.get("/training-jobs", headers=ACME)
    assert [job["id"] for job in ours.json()["items"]] == [job_id]


SCHEDULED = "01956900-aaaa-7bbb-8ccc-0000000000aa"
BAD_INPUT = [
    ({"hyperparameters": {"learning_rate": -1}}, "hyperparameters.learning_rate"),
    ({"hyperparameters": {"lr_schedule": "exponential"}}, "hyperparameters.lr_schedule"),
    ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
    ({"hyperparameters": {"epochz": 3}}, "hyperparameters.epochz"),
    ({"hyperparameters": {"warmup_steps": 50}}, "hyperparameters.warmup_steps"),
    ({"lora": {"rank": 0}}, "lora.rank"),
    ({"lora": {"dropout": 1.5}}, "lora.dropout"),
    ({"data_format": "csv"}, "data_format"),
    ({"base_model": {"id": "tiny"}}, "base_model.id"),
    ({"dataset": {"validation_file": None}}, "dataset.validation_file"),
    ({"dataset": {"train_file": "../../globex/train.jsonl"}}, "dataset.train_file"),
    (  # a size no scheduler project could ever hold: refused up front, not a job that cannot start
        {"scheduler_project_id": SCHEDULED, "resources": {"cpu_cores": 20000, "memory_bytes": 1024**3}},
        "resources.cpu_cores",
    ),
    ({"resources": {"cpu_cores": 2, "memory_bytes": 2**70}}, "resources.memory_bytes"),
]
URIS_ARE_NOT_ACCEPTED = [  # object locations, as jobs named them before: any bucket and key
    {"base_model": {"uri": "s3://forge-models/globex/base/"}},
    {
        "dataset": {
            "version_id": "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60",
            "bucket": "forge-datasets",
            "train_key": "tenants/globex/blobs/sha256/aa/aa",
        }
    },
]


async def test_bad_hyperparameters_are_refused_naming_the_field_and_nothing_is_created(
    training: TrainingService, inputs: Inputs
) -> None:
    for change, field in BAD_INPUT:
        response = await training.http.post("/training-jobs", json=job_body(inputs, **change), headers=ACME)

        assert response.status_code == 422, (change, response.text)
        assert field in response.json()["detail"], (change, response.json()["detail"])
    for change in URIS_ARE_NOT_ACCEPTED:
        response = await training.http.post(
            "/training-jobs", json={**job_body(inputs), **change}, headers=ACME
        )
        assert response.status_code == 422, (change, response.text)
    listed = await training.http.get("/training-jobs", headers=ACME)
    assert listed.json()["items"] == []


async def test_a_job_naming_another_tenants_dataset_version_or_base_model_is_not_found_and_not_created(
    training: TrainingService, inputs: Inputs
) -> None:
    theirs = {"dataset_id": inputs.theirs.dataset_id, "version_id": inputs.theirs.version_id}
    for change, what in (
        ({"dataset": theirs}, "dataset"),
        ({"base_model": {"id": inputs.their_base_model_id}}, "base model"),
    ):
        response = await training.http.post("/training-jobs", json=job_body(inputs, **change), headers=ACME)

        assert response.status_code == 404, (change, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert what in response.json()["detail"], response.json()
    missing_file = await training.http.post(
        "/training-jobs", json=job_body(inputs, dataset={"train_file": "other.jsonl"}), headers=ACME
    )
    assert missing_file.status_code == 422, missing_file.text
    assert (
        "dataset.train_file" in missing_file.json()["detail"]
        and "other.jsonl" in missing_file.json()["detail"]
    )
    assert (await training.http.get("/training-jobs", headers=ACME)).json()["items"] == []
    assert (await training.http.get("/training-jobs", headers=GLOBEX)).json()["items"] == []


async def test_a_job_whose_workflow_cannot_start_leaves_nothing_behind(
    training: TrainingService, inputs: Inputs
) -> None:
    deps = training.deps
    client = deps.runtime.temporal
    assert client is not None
    body = CreateTrainingJob.model_validate(job_body(inputs))
    job = service.new_job("acme", "alice", body, _inputs_of(inputs))
    taken = f"training-job:{job.id}"  # the workflow engine refuses a second workflow with this id
    running = await client.start_workflow(
        WORKFLOW,
        TrainingJobInput(tenant_id="acme", job_id=job.id),
        id=taken,
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
    )

    async def record(session: object) -> None:
        await service.record_job(session, job, "alice")  # type: ignore[arg-type]

    with pytest.raises(Unavailable, match="nothing was created"):
        await service.record_and_start(
            deps, record, WORKFLOW, TrainingJobInput(tenant_id="acme", job_id=job.id), taken, what="job"
        )

    assert (await training.http.get(f"/training-jobs/{job.id}", headers=ACME)).status_code == 404
    async with deps.db.session() as session:
        events = await session.exec(
            text("SELECT count(*) FROM outbox WHERE key = :key"), params={"key": job.id}
        )  # type: ignore[call-overload]
        assert events.one()[0] == 0  # no `created` event for a job that does not exist
    assert (await running.describe()).status is not None  # the other workflow was left alone
    await running.terminate(reason="test over")


def _inputs_of(inputs: Inputs) -> service.JobInputs:
    return service.JobInputs(
        base_model_uri=inputs.base_model_uri,
        base_model_id=inputs.base_model_id,
        dataset_id=inputs.data.dataset_id,
        dataset_version_id=inputs.data.version_id,
        bucket=inputs.bucket,
        train_key=inputs.data.keys["train.jsonl"],
        validation_key=inputs.data.keys["validation.jsonl"],
    )


async def test_a_request_without_a_token_is_refused(training: TrainingService, inputs: Inputs) -> None:
    response = await training.http.post("/training-jobs", json=job_body(inputs))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_restarted_run_resumes_from_the_last_uploaded_checkpoint(
    training: TrainingService, inputs: Inputs
) -> None:
    body = CreateTrainingJob.model_validate(job_body(inputs))
    job = await service.create_job(training.deps.db, "acme", "alice", body, _inputs_of(inputs))
    await service.enqueue(training.deps.db, "acme", job.id)
    activities = TrainingActivities(training.deps)
    ref = JobRef(tenant_id="acme", job_id=job.id)

    first = ActivityEnvironment()  # the first worker dies right after uploading its first checkpoint

    def die_after_first_checkpoint(*details: object) -> None:
        progress = details[0] if details else None
        if isinstance(progress, dict) and progress.get("checkpoint_step"):
            first.cancel()

    first.on_heartbeat = die_after_first_checkpoint
    with pytest.raises(asyncio.CancelledError):
        await first.run(activities.run_training, ref)
    interrupted = await training.get(job.id)
    assert interrupted["state"] == "running"
    assert interrupted["outputs"]["last_checkpoint_step"] == 4

    outcome = await ActivityEnvironment().run(activities.run_training, ref)

    assert outcome.state == "succeeded" and outcome.resumed_from_step == 4
    finished = await training.get(job.id)
    assert finished["state"] == "succeeded" and finished["attempt"] == 2
    messages = [line["message"] for line in await training.logs(job.id, tail=500)]
    assert "resumed from checkpoint step-4 at step 4" in messages
    assert sum("training runtime started" in m for m in messages) == 2
    metrics = await training.http.get(
        f"/training-jobs/{job.id}/metrics", params={"name": "train_loss"}, headers=ACME
    )
    assert [p["step"] for p in metrics.json()["series"][0]["points"]] == list(range(1, 13))


async def test_a_job_names_its_dataset_version_by_alias_and_records_the_version_the_alias_named(
    training: TrainingService, inputs: Inputs
) -> None:
    data = inputs.data
    golden = await inputs.catalogue.dataset.put(
        f"/datasets/{data.dataset_id}/aliases/golden", json={"version_id": data.version_id}, headers=ACME
    )
    assert golden.status_code == 200, golden.text
    long_run = {"max_steps": 20000, "eval_every_steps": None}

    for alias in ("latest", "golden"):
        created = await training.create(
            job_body(inputs, dataset={"version_id": alias}, hyperparameters=long_run)
        )
        assert created["dataset_version_id"] == data.version_id, alias  # the id, not the name
        stopped = await training.http.post(f"/training-jobs/{created['id']}/cancel", json={}, headers=ACME)
        assert stopped.status_code == 202, stopped.text

    before = len((await training.http.get("/training-jobs", headers=ACME)).json()["items"])
    theirs = {"dataset_id": inputs.theirs.dataset_id, "version_id": "latest"}
    for dataset, status in (({"version_id": "nope"}, 404), (theirs, 404), ({"version_id": "Latest!"}, 422)):
        response = await training.http.post(
            "/training-jobs", json=job_body(inputs, dataset=dataset), headers=ACME
        )
        assert response.status_code == status, (dataset, response.text)
    assert len((await training.http.get("/training-jobs", headers=ACME)).json()["items"]) == before
