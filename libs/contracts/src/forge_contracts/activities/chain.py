"""The model chain: train -> evaluate -> gate -> register -> deliver, one Temporal workflow hosted by the
training service, calling each service's activities on its own task queue."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_contracts.activities.delivery import ModelCardInfo
from forge_contracts.activities.registry import Thresholds

WORKFLOW = "ModelChainWorkflow"
APPROVE_RELEASE = "approve_release"
"""Signal: release a version whose evaluation failed (an audited override)."""
CANCEL_REQUESTED = "cancel_requested"
"""Signal: who asked to cancel the chain and why, sent just before the workflow is cancelled."""
STAGE = "stage"
"""Query: the chain's current stage and what it has produced so far."""
CREATE_CHAIN_JOB = "training.create_chain_job"

Stage = Literal[
    "resolving_dataset",
    "allocating",
    "training",
    "evaluating",
    "registering",
    "gating",
    "awaiting_approval",
    "releasing",
    "delivering",
    "delivered",
    "cancelled",
    "blocked",
    "failed",
]


def workflow_id(tenant_id: str, chain_id: str) -> str:
    """The chain's workflow id (stable, so a repeated request cannot start it twice)."""
    return f"model-chain:{tenant_id}:{chain_id}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChainTraining(_Model):
    """How to fine-tune (a subset of the training service's hyper-parameters)."""

    max_steps: int = Field(default=60, ge=1, le=1_000_000)
    learning_rate: float = Field(default=1e-2, gt=0, le=1)
    batch_size: int = Field(default=8, ge=1, le=4096)
    lora_rank: int = Field(default=8, ge=1, le=1024)
    lora_alpha: int = Field(default=16, ge=1, le=4096)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    checkpoint_every_steps: int | None = Field(default=None, ge=1)
    seed: int = 0


class ChainRequest(_Model):
    """Everything one run of the chain needs; ids refer to the other services' entities."""

    chain_id: str = Field(min_length=1, max_length=100)
    tenant_id: str
    actor: str | None = None
    dataset_id: str = Field(description="Dataset service: the dataset.")
    dataset_version_id: str = Field(description="A published version with train/validation/test.jsonl.")
    base_model_uri: str = Field(description="s3:// prefix of the base model directory.")
    base_model_id: str | None = Field(default=None, description="Registry: the base model.")
    model_project_id: str = Field(description="Registry: the model project the version belongs to.")
    scheduler_project_id: str = Field(description="Scheduler: the project whose quota the run uses.")
    cpu_millis: int = Field(default=1000, ge=1)
    memory_bytes: int = Field(default=2 * 1024**3, ge=1)
    training: ChainTraining = Field(default_factory=ChainTraining)
    gate: Thresholds = Field(description="Evaluation thresholds the version must meet to be released.")
    eval_max_records: int | None = Field(default=None, ge=1)
    eval_max_new_tokens: int = Field(default=16, ge=1, le=4096)
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    card: ModelCardInfo
    approval_timeout_s: float = Field(default=24 * 3600.0, gt=0, description="How long a failed gate waits.")


class Approval(_Model):
    """The override of a failed gate: who approves and why (both required, both audited)."""

    approved_by: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=4000)


class StageMark(_Model):
    """When the chain entered a stage (workflow time, so replays give the same timeline)."""

    stage: Stage
    at: datetime


class Cancellation(_Model):
    """Who cancelled the chain and why (recorded in its status)."""

    cancelled_by: str | None = Field(default=None, max_length=256)
    reason: str | None = Field(default=None, max_length=4000)


class ChainStatus(_Model):
    """What the chain has done so far (the `stage` query, and the workflow's result)."""

    stage: Stage
    stages: list[StageMark] = Field(
        default_factory=list, description="Every stage entered so far, in order, with when it was entered."
    )
    training_job_id: str | None = None
    allocation_id: str | None = None
    model_uri: str | None = None
    evaluation_job_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    model_version_id: str | None = None
    gate_passed: bool | None = None
    failed_checks: list[str] = Field(default_factory=list)
    approved_by: str | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    delivery_order_id: str | None = None
    bundle_uri: str | None = None
    error: str | None = None


class CreateChainJob(_Model):
    """The chain's training job, created once (idempotent by `request_key`)."""

    request_key: str
    tenant_id: str
    actor: str | None = None
    model_project_id: str
    base_model_uri: str
    base_model_id: str | None = None
    dataset_id: str | None = None
    dataset_version_id: str
    bucket: str
    train_key: str
    validation_key: str | None = None
    training: ChainTraining
