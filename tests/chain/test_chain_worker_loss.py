"""The chain survives the loss of the training worker mid-run: the training service (which hosts the
chain's workflow, the training job's child workflow and the runtime) runs as its own process, as `forge
up` runs it, and is SIGKILLed while the job trains, after a checkpoint reached object storage. Started
again, it replays the chain from Temporal's history, the training run resumes from the checkpoint on
the new worker, and the chain goes on to deliver, with every stage in its timeline once."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from forge_cli.demo import DemoInputs, chain_body, follow_chain, set_up, start_chain
from forge_cli.services import ServiceProcess
from forge_cli.stack import Stack
from forge_kit.stack_env import StackSettings

from tests.chain.conftest import ADMIN, TENANT, create_databases, service_apps
from tests.chain.test_model_chain import DELIVERED_TIMELINE
from tests.harness import free_port, kill_and_relaunch, ready, replays, serving
from tests.waiting import eventually

IN_PROCESS = ("dataset", "scheduler", "registry", "delivery")


async def test_the_chain_delivers_after_its_training_worker_is_killed_mid_run(
    stack: Stack,
    stack_settings: StackSettings,
    s3_bucket: str,
    inputs: DemoInputs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    databases = await create_databases(stack_settings, (*IN_PROCESS, "training"))
    apps = service_apps(stack_settings, {name: databases[name] for name in IN_PROCESS}, tmp_path / "jobs")
    for name, value in {
        "FORGE_DATABASE_URL": databases["training"],
        "FORGE_PROGRESS_INTERVAL_S": "0.2",
        "FORGE_TRAINING_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    worker = ServiceProcess(stack, "training", instance=f"training-chain-loss-{uuid.uuid4().hex[:6]}")
    worker.prepare()
    async with AsyncExitStack() as running:
        http = {name: await running.enter_async_context(serving(app)) for name, app in apps.items()}
        worker.launch()
        running.callback(worker.stop)
        await eventually(lambda: ready(worker), timeout_s=90, interval_s=0.5, what="the training service")
        http["training"] = await running.enter_async_context(
            httpx.AsyncClient(base_url=worker.endpoints()["http"], timeout=30)
        )
        setup = await set_up(http, stack_settings, inputs, caller=TENANT, admin=ADMIN, bucket=s3_bucket)
        body = chain_body(setup, {"perplexity": {"max": 1e9}}, max_steps=120)
        body["training"]["checkpoint_every_steps"] = 5
        chain_id = (await start_chain(http["training"], setup, body))["chain_id"]

        async def checkpointed() -> dict[str, Any] | None:
            view = (await http["training"].get(f"/chains/{chain_id}", headers=TENANT)).json()
            job_id = (view["status"] or {}).get("training_job_id")
            if view["status"]["stage"] != "training" or job_id is None:
                return None
            job = (await http["training"].get(f"/training-jobs/{job_id}", headers=TENANT)).json()
            step = job["outputs"]["last_checkpoint_step"]
            return job if job["state"] == "running" and step and job["progress"]["step"] < 120 else None

        before = await eventually(checkpointed, timeout_s=300, interval_s=0.2, what="a checkpoint upload")
        await kill_and_relaunch(worker)  # the chain's worker and the training run die mid-run
        await eventually(lambda: ready(worker), timeout_s=90, interval_s=0.5, what="the restarted service")

        done = await follow_chain(http["training"], setup.caller, chain_id, timeout_s=600)
        after = (await http["training"].get(f"/training-jobs/{before['id']}", headers=TENANT)).json()
        held = await http["scheduler"].get(f"/allocations/{after['allocation_id']}", headers=TENANT)
        allocation = held.json()

    status = done["status"]
    assert [mark["stage"] for mark in status["stages"]] == DELIVERED_TIMELINE  # replayed, not restarted
    assert status["bundle_uri"].startswith("s3://")
    assert after["state"] == "succeeded"
    assert after["attempt"] >= 2
    assert after["resumed_from_step"] is not None
    assert after["resumed_from_step"] >= before["outputs"]["last_checkpoint_step"]
    assert allocation["state"] == "released"
    await replays(
        stack_settings,
        {
            "model-chain-training-worker-lost": done["workflow_id"],
            "training-job-resumed-on-another-worker": f"training-job:{after['id']}",
        },
    )
