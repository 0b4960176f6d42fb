"""Killing the training worker mid-run does not lose the run: the training service runs as its own
process (as `forge up` runs it); it is SIGKILLed after a checkpoint reached object storage and started
again; Temporal retries the run on the new worker once the heartbeat times out, the run resumes from
the checkpoint, and the job succeeds."""

from __future__ import annotations

import uuid

import httpx
import pytest
from forge_cli.services import ServiceProcess
from forge_cli.stack import Stack

from tests.harness import free_port, kill_and_relaunch, ready
from tests.services.training.conftest import ACME, Inputs, job_body
from tests.waiting import eventually


async def test_killing_the_training_worker_mid_run_does_not_lose_the_run(
    stack: Stack, database: str, inputs: Inputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "FORGE_DATABASE_URL": database,
        "FORGE_TASK_QUEUE": f"forge-training-{uuid.uuid4().hex[:8]}",
        "FORGE_TRAINING_BUCKET": inputs.bucket,
        "FORGE_DATASET_TASK_QUEUE": inputs.catalogue.dataset_task_queue,
        "FORGE_REGISTRY_TASK_QUEUE": inputs.catalogue.registry_task_queue,
        "FORGE_HEARTBEAT_TIMEOUT_S": "5",
        "FORGE_PROGRESS_INTERVAL_S": "0.2",
        "FORGE_TRAINING_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    worker = ServiceProcess(stack, "training", instance=f"training-worker-loss-{uuid.uuid4().hex[:6]}")
    worker.prepare()
    worker.launch()
    try:
        await eventually(lambda: ready(worker), timeout_s=90, interval_s=0.5, what="the training service")
        async with httpx.AsyncClient(base_url=worker.endpoints()["http"], timeout=30) as http:
            body = job_body(
                inputs,
                hyperparameters={"max_steps": 40, "checkpoint_every_steps": 5, "eval_every_steps": None},
            )
            created = await http.post("/training-jobs", json=body, headers=ACME)
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]

            async def checkpointed() -> dict | None:
                job = (await http.get(f"/training-jobs/{job_id}", headers=ACME)).json()
                step = job["outputs"]["last_checkpoint_step"]
                return job if job["state"] == "running" and step and job["progress"]["step"] < 40 else None

            before = await eventually(checkpointed, timeout_s=180, interval_s=0.2, what="a checkpoint upload")
            await kill_and_relaunch(worker)  # the worker dies mid-run
            await eventually(lambda: ready(worker), timeout_s=90, interval_s=0.5, what="the restarted one")

            async def finished() -> dict | None:
                job = (await http.get(f"/training-jobs/{job_id}", headers=ACME)).json()
                assert job["state"] not in ("failed", "cancelled"), job
                return job if job["state"] == "succeeded" else None

            after = await eventually(finished, timeout_s=300, interval_s=1.0, what="the job to succeed")
            series = (await http.get(f"/training-jobs/{job_id}/metrics?name=train_loss", headers=ACME)).json()
    finally:
        worker.stop()

    assert after["attempt"] >= 2
    assert after["resumed_from_step"] is not None
    assert after["resumed_from_step"] >= before["outputs"]["last_checkpoint_step"]
    assert after["outputs"]["model_uri"]
    (train_loss,) = [s for s in series["series"] if s["name"] == "train_loss"]
    steps = [point["step"] for point in train_loss["points"]]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # no step recorded twice, none missing at the end
