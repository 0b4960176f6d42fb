"""`forge jobs`, `forge models` and `forge chains` as a signed-in user runs them, against the platform as
`forge up` runs it, through the gateway: a job submitted from a YAML config and followed with its logs and
progress bar, the registry's projects as JSON, and one chain started, followed to the approval its failed
gate waits for (which a viewer cannot give: exit 3, 403), approved and followed to its delivered bundle."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from forge_cli.demo import chain_body

from tests.chain.test_model_chain import DELIVERED_TIMELINE
from tests.cli.conftest import Users, forge

APPROVED_TIMELINE = [
    *DELIVERED_TIMELINE[: DELIVERED_TIMELINE.index("gating") + 1],
    "awaiting_approval",
    *DELIVERED_TIMELINE[DELIVERED_TIMELINE.index("gating") + 1 :],
]
"""The stages of a chain whose evaluation fails the gate and whose release is then approved."""


def test_a_user_submits_a_job_from_a_yaml_config_and_follows_its_logs_to_the_end(
    users: Users, tmp_path: Path
) -> None:
    setup, env = users.setup, users.demo
    config = tmp_path / "lora.yaml"
    config.write_text(
        f"""# a LoRA job, as a team keeps it next to its code
name: cli-lora-{uuid.uuid4().hex[:6]}
project_id: {setup.model_project_id}
base_model: {{id: {setup.base_model_id}}}
dataset:
  dataset_id: {setup.dataset_id}
  version_id: {setup.dataset_version_id}
  train_file: train.jsonl
  validation_file: validation.jsonl
data_format: alpaca
hyperparameters: {{max_steps: 6, learning_rate: 0.02, batch_size: 16, eval_every_steps: 3}}
lora: {{rank: 4, alpha: 8}}
"""
    )

    submitted = forge("jobs", "submit", str(config), env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.strip()
    followed = forge("jobs", "logs", job_id, "--follow", env=env)

    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "training runtime started" in followed.stdout  # the job's log lines, as they came
    assert re.search(r"training succeeded .* 6/6 loss \d+\.\d{3}", followed.stdout), followed.stdout
    shown = json.loads(forge("jobs", "show", job_id, "--json", env=env).stdout)
    assert shown["state"] == "succeeded" and shown["progress"]["step"] == 6
    assert shown["outputs"]["model_uri"].startswith("s3://")
    logs = forge("jobs", "logs", job_id, "--tail", "2", env=env)
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 2, logs.stdout
    metrics = json.loads(forge("jobs", "metrics", job_id, "--json", env=env).stdout)
    assert {"train_loss", "eval_loss"} <= {series["name"] for series in metrics}
    assert job_id in {job["id"] for job in json.loads(forge("jobs", "list", "--json", env=env).stdout)}
    ended = forge("jobs", "cancel", job_id, env=env)
    assert ended.returncode == 3 and "409" in ended.stderr, ended.stdout + ended.stderr


def test_a_user_lists_the_model_projects_as_json(users: Users) -> None:
    listed = forge("models", "projects", "--json", env=users.demo)

    assert listed.returncode == 0, listed.stdout + listed.stderr
    project = next(p for p in json.loads(listed.stdout) if p["id"] == users.setup.model_project_id)
    assert project["name"].startswith("demo-")


def test_a_chain_is_started_approved_by_an_approver_not_a_viewer_and_followed_to_delivery(
    users: Users, tmp_path: Path
) -> None:
    setup, env, viewer = users.setup, users.demo, users.viewer
    body = tmp_path / "chain.json"
    # A gate no tiny model passes: the chain waits for a release approver.
    body.write_text(json.dumps(chain_body(setup, {"perplexity": {"max": 1.0}}, max_steps=8)))
    project = setup.model_project_id

    started = forge("chains", "start", str(body), "--json", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    chain_id = json.loads(started.stdout)["chain_id"]
    waiting = forge("chains", "follow", chain_id, "--until", "awaiting_approval", env=env)
    assert waiting.returncode == 0, waiting.stdout + waiting.stderr
    assert re.findall(r"stage: (\w+)", waiting.stdout) == APPROVED_TIMELINE[:7]
    assert re.search(r"training .* 8/8 loss \d+\.\d{3}", waiting.stdout), waiting.stdout  # the run's bar
    [version] = json.loads(forge("models", "versions", project, "--json", env=env).stdout)
    assert version["state"] == "evaluation_failed"

    refused = forge("chains", "approve", chain_id, "--reason", "looks fine to me", env=viewer)
    assert refused.returncode == 3 and "403" in refused.stderr, refused.stdout + refused.stderr
    refused = forge("models", "approve", project, "1", "--reason", "looks fine to me", env=viewer)
    assert refused.returncode == 3 and "403" in refused.stderr, refused.stdout + refused.stderr
    approved = forge("chains", "approve", chain_id, "--reason", "a tiny demo model; RISK-1", env=env)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    delivered = forge("chains", "follow", chain_id, env=env)

    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert re.findall(r"stage: (\w+)", delivered.stdout) == APPROVED_TIMELINE
    assert re.search(rf"delivered model version {version['id']}: s3://\S+", delivered.stdout)
    shown = json.loads(forge("chains", "show", chain_id, "--json", env=env).stdout)
    assert shown["status"]["stage"] == "delivered" and shown["status"]["approved_by"] == "demo"
    listed = json.loads(forge("chains", "list", "--json", env=env).stdout)
    assert chain_id in {chain["chain_id"] for chain in listed}
    released = json.loads(forge("models", "show", project, "1", "--json", env=env).stdout)
    assert released["state"] == "delivered" and released["bundle_uri"] == shown["status"]["bundle_uri"]
    again = forge("chains", "cancel", chain_id, env=env)
    assert again.returncode == 3 and "409" in again.stderr  # it has ended
