"""`forge demo`: one real model from raw data to a delivered bundle, through the services' own APIs.

1. The training runtime builds a tiny base model (tokenizer trained on the data + a small random Llama)
   and the sample instruction dataset shipped in the repo, split into train/validation/test.
2. The base model goes to object storage; the dataset service receives the three files and publishes
   an immutable version; the registry gets a model project; the scheduler a project with a quota.
3. The training service runs the chain (train -> evaluate -> gate -> register -> deliver) as one
   Temporal workflow, whose stage is shown until the bundle is delivered.

The same steps drive the end-to-end test, with in-process clients instead of the running services.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_sdk.auth import SignedIn, password_login

TINY_BASE = {"vocab_size": 300, "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}
CARD = {
    "description": "A tiny instruction-following model fine-tuned with LoRA by the Forge demo.",
    "intended_use": "Demonstrating Forge's hand-off to an inference platform.",
    "limitations": "Trained for seconds on a few hundred synthetic records; answers are unreliable.",
}
DEMO_BUCKET = "forge-models"
"""The models bucket: the demo puts its base model in the demo tenant's area (forge_kit.objects)."""


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


@dataclass
class DemoInputs:
    train: Path
    validation: Path
    test: Path
    base_model: Path
    base_model_info: dict[str, Any]


@dataclass
class DemoSetup:
    """The entities the demo created, by service."""

    tenant: str
    base_model_uri: str
    base_model_id: str
    dataset_id: str
    dataset_version_id: str
    model_project_id: str
    scheduler_project_id: str
    caller: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Request headers of the signed-in user who made them (bearer token and tenant)."""


def runtime_cli(command: str, spec: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Run `python -m forge_training_runtime <command>` (its own process: torch stays out of here)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_file = work_dir / f"{command}.json"
    spec_file.write_text(json.dumps(spec))
    completed = subprocess.run(
        [sys.executable, "-m", "forge_training_runtime", command, "--spec", str(spec_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    last = json.loads(completed.stdout.splitlines()[-1]) if completed.stdout.strip() else {}
    if completed.returncode != 0 or last.get("kind") != "result":
        raise DemoError(
            f"training runtime {command} failed: {last.get('message') or completed.stderr[-1000:]}"
        )
    result: dict[str, Any] = last["result"]
    return result


def build_inputs(work_dir: Path) -> DemoInputs:
    """The sample data split three ways and a tiny base model trained on it (cached in `work_dir`)."""
    splits = runtime_cli("sample-data", {"out_dir": str(work_dir / "data")}, work_dir)
    base = work_dir / "base"
    info_file = work_dir / "base-model.json"  # what build-base reported (architecture, parameter count)
    if not (base / "config.json").exists() or not info_file.exists():
        built = runtime_cli(
            "build-base",
            {"corpus_files": [splits["train_file"]], "out_dir": str(base), **TINY_BASE},
            work_dir,
        )
        info_file.write_text(json.dumps(built))
    return DemoInputs(
        Path(splits["train_file"]),
        Path(splits["validation_file"]),
        Path(splits["test_file"]),
        base,
        json.loads(info_file.read_text()),
    )


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DemoError(f"{what} failed ({response.status_code}): {response.text[:1000]}")
    body: dict[str, Any] = response.json()
    return body


async def publish_base_model(
    http: Mapping[str, httpx.AsyncClient],
    stack: StackSettings,
    inputs: DemoInputs,
    *,
    caller: Mapping[str, str],
    bucket: str = DEMO_BUCKET,
    name: str | None = None,
) -> tuple[str, str]:
    """Put the tiny base model in the tenant's model area and register it in the hub as `caller`;
    returns (its URI, the hub's id)."""
    tenant = caller["x-forge-tenant"]
    prefix = f"tenants/{tenant}/base/{uuid.uuid4().hex[:8]}/"  # in the tenant's model area
    async with s3_client(stack) as s3:
        try:
            await s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        for path in sorted(inputs.base_model.iterdir()):
            await s3.upload_file(str(path), bucket, prefix + path.name)
    base_model = _ok(
        await http["registry"].post(
            "/base-models",
            headers=caller,
            json={
                "name": name or f"tiny-llama-{uuid.uuid4().hex[:6]}",
                "version": "1",
                "uri": f"s3://{bucket}/{prefix}",
                "architecture": str(inputs.base_model_info.get("architecture", "LlamaForCausalLM")),
                "parameter_count": int(inputs.base_model_info["parameter_count"]),
                "intended_use": "A tiny base model built here (no model hub), for the demo and tests.",
                "licence": "apache-2.0",
            },
        ),
        "registering the base model",
    )
    return f"s3://{bucket}/{prefix}", str(base_model["id"])


async def create_scheduler_project(
    scheduler: httpx.AsyncClient, name: str, *, caller: Mapping[str, str], admin: Mapping[str, str]
) -> str:
    """A scheduler project made by `caller`, with a quota that `admin` (a platform admin) sets."""
    project = _ok(
        await scheduler.post("/projects", json={"name": name}, headers=caller),
        "creating the scheduler project",
    )
    _ok(
        await scheduler.put(
            f"/projects/{project['id']}/quota",
            headers=admin,
            json={"cpu_millis": 4000, "memory_bytes": 16 * 1024**3, "accelerators": {}},
        ),
        "setting the quota",
    )
    return str(project["id"])


async def set_up(
    http: dict[str, httpx.AsyncClient],
    stack: StackSettings,
    inputs: DemoInputs,
    *,
    caller: Mapping[str, str],
    admin: Mapping[str, str],
    bucket: str = DEMO_BUCKET,
) -> DemoSetup:
    """Upload the base model; create and publish the dataset version; create the registry and scheduler
    projects through the services' APIs as `caller` (a signed-in user: bearer token and x-forge-tenant);
    `admin`, a platform admin in the same tenant, sets the scheduler project's quota."""
    headers = caller
    tenant = caller["x-forge-tenant"]
    suffix = uuid.uuid4().hex[:6]
    base_model_uri, base_model_id = await publish_base_model(
        http, stack, inputs, caller=caller, bucket=bucket, name=f"tiny-llama-{suffix}"
    )
    dataset = _ok(
        await http["dataset"].post(
            "/datasets",
            headers=headers,
            json={
                "name": f"demo-instructions-{suffix}",
                "modality": "text",
                "secrecy": "public",
                "licence": "cc0-1.0",
                "source": "upload",
                "description": "Forge's sample instruction data (sentiment, capitals, arithmetic)",
            },
        ),
        "creating the dataset",
    )
    version = _ok(
        await http["dataset"].post(f"/datasets/{dataset['id']}/versions", headers=headers),
        "creating a dataset version",
    )
    for name, path in (("train", inputs.train), ("validation", inputs.validation), ("test", inputs.test)):
        _ok(
            await http["dataset"].put(
                f"/datasets/{dataset['id']}/versions/{version['id']}/files/{name}.jsonl",
                content=path.read_bytes(),
                headers=headers,
            ),
            f"uploading {name}.jsonl",
        )
    _ok(
        await http["dataset"].post(
            f"/datasets/{dataset['id']}/versions/{version['id']}/publish", headers=headers
        ),
        "publishing the dataset version",
    )
    project = _ok(
        await http["registry"].post(
            "/model-projects",
            headers=headers,
            json={
                "name": f"demo-{suffix}",
                "desc": "The Forge demo's model",
                "train_framework": "pytorch",
                "inference_framework": "transformers",
            },
        ),
        "creating the model project",
    )
    scheduler_project_id = await create_scheduler_project(
        http["scheduler"], f"demo-{suffix}", caller=caller, admin=admin
    )
    return DemoSetup(
        tenant,
        base_model_uri,
        base_model_id,
        dataset["id"],
        version["id"],
        project["id"],
        scheduler_project_id,
        caller,
    )


def chain_body(setup: DemoSetup, gate: dict[str, Any], *, max_steps: int = 20) -> dict[str, Any]:
    """The chain request for the demo's entities."""
    return {
        "dataset_id": setup.dataset_id,
        "dataset_version_id": setup.dataset_version_id,
        "base_model_uri": setup.base_model_uri,
        "base_model_id": setup.base_model_id,
        "model_project_id": setup.model_project_id,
        "scheduler_project_id": setup.scheduler_project_id,
        "training": {
            "max_steps": max_steps,
            "learning_rate": 0.02,
            "batch_size": 16,
            "lora_rank": 4,
            "lora_alpha": 8,
            "checkpoint_every_steps": 10,
        },
        "gate": gate,
        "eval_max_records": 8,
        "eval_max_new_tokens": 8,
        "model_name": f"forge-demo-{uuid.uuid4().hex[:6]}",
        "card": CARD,
    }


async def start_chain(training: httpx.AsyncClient, setup: DemoSetup, body: dict[str, Any]) -> dict[str, Any]:
    """Start the chain with `body` (see `chain_body`); returns its view, with the Temporal UI link."""
    return _ok(await training.post("/chains", json=body, headers=setup.caller), "starting the chain")


async def follow_chain(
    training: httpx.AsyncClient,
    caller: Mapping[str, str],
    chain_id: str,
    until: str = "delivered",
    *,
    timeout_s: float = 900,
    on_stage: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    on_poll: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
) -> dict[str, Any]:
    """Poll the chain until it reaches `until`; raise DemoError if it fails or stops first. `on_stage`
    sees the view when the stage changes, `on_poll` on every poll. `caller`: the signed-in user's headers."""
    headers = caller
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = None
    while loop.time() < deadline:
        view = _ok(await training.get(f"/chains/{chain_id}", headers=headers), "reading the chain")
        stage = view["status"]["stage"] if view["status"] else None
        if stage != last and on_stage is not None:
            maybe = on_stage(view)
            if maybe is not None:
                await maybe
        last = stage
        if on_poll is not None:
            maybe = on_poll(view)
            if maybe is not None:
                await maybe
        if stage == until:
            return view
        if view["workflow_status"] != "RUNNING" or stage in ("failed", "blocked"):
            raise DemoError(
                f"the chain stopped at {stage!r} ({view['workflow_status']}): "
                f"{(view['status'] or {}).get('error')}; see {view['temporal_ui']}"
            )
        await asyncio.sleep(1.0)
    raise DemoError(f"the chain did not reach {until!r} in {timeout_s:.0f}s (last stage {last!r})")


DEMO_TENANT = "demo"
DEMO_ROLES = ["tenant-admin", "ml-engineer", "release-approver"]


async def sign_in_demo(
    env: Mapping[str, str], scheduler: httpx.AsyncClient, *, tenant: str = DEMO_TENANT
) -> tuple[SignedIn, SignedIn]:
    """Sign in the local stack's demo user (and its platform admin), making sure the demo tenant exists
    with the demo user as tenant admin, ML engineer and release approver. Returns (demo user, admin),
    both acting in the tenant. Only for the local stack, whose seeded users share one generated password."""
    issuer = env["FORGE_OIDC_ISSUER"]
    password = env["FORGE_DEMO_PASSWORD"]
    user = env.get("FORGE_DEMO_USER", "demo")
    admin_tokens = await asyncio.to_thread(
        password_login, issuer, env.get("FORGE_PLATFORM_ADMIN_USER", "ada"), password
    )
    admin = SignedIn(admin_tokens)
    created = await scheduler.post(
        "/tenants", json={"id": tenant, "display_name": "Forge demo", "admins": [user]}, headers=admin
    )
    if created.status_code != 409:
        _ok(created, "creating the demo tenant")
    _ok(
        await scheduler.put(f"/tenants/{tenant}/members/{user}", json={"roles": DEMO_ROLES}, headers=admin),
        "granting the demo user its roles",
    )
    demo_tokens = await asyncio.to_thread(password_login, issuer, user, password)
    return SignedIn(demo_tokens, tenant), admin.in_tenant(tenant)
