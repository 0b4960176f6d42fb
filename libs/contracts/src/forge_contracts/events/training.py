"""Events of the training service: training jobs and evaluation jobs (topic `forge.training.events`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from forge_contracts.events.base import (
    EntityEvent,
    Id,
    Metrics,
    ResourceRequest,
    S3Uri,
    Text,
    after,
    before,
    example,
)

_JOB = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-03T12:00:00Z",
    "job_id": "01956a00-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
    "project_id": "01956900-aaaa-7bbb-8ccc-000000000001",
    "kind": "fine_tune",
}
_EVAL = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-03T15:00:00Z",
    "evaluation_id": "01956b00-1234-7abc-8def-0123456789ab",
    "model_version_id": "01956a80-5555-7666-8777-888899990000",
}
_ALLOCATION = "01956a01-0000-7000-8000-00000000a111"


def _absent_when_none(schema: dict[str, Any]) -> None:
    """JSON Schema of a field that is left out when it has no value (never sent as null)."""
    schema.pop("default", None)


def _absent(value: Any) -> bool:
    return value is None


_CHECKPOINT = "s3://forge-checkpoints/acme/01956a00/step-1200/"


class TrainingJobEvent(EntityEvent):
    """Fields of every training job event; the aggregate is the job."""

    aggregate_field: ClassVar[str] = "job_id"

    job_id: Id = Field(description="The training job (the aggregate id, the Kafka key).")
    project_id: Id = Field(description="The project it belongs to (quotas and access are per project).")
    kind: Literal["train", "fine_tune"] = Field(
        description="Training from scratch or fine-tuning a base model."
    )


class TrainingJobCreated(TrainingJobEvent):
    """A training or fine-tuning job was created from a form, a config file or a template."""

    event_type: ClassVar[str] = "forge.training.job.created.v1"
    model_config = example(
        {
            **_JOB,
            "actor": "alice",
            "to_state": "pending",
            "name": "qwen-support-lora",
            "dataset_version_ids": ["01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60"],
            "base_model_version_id": "01956800-0000-7000-8000-0000000000aa",
            "method": "lora",
            "hyperparameters": {"learning_rate": 0.0002, "epochs": 3, "lora_rank": 16, "lora_alpha": 32},
            "resources": {
                "cpu_cores": 8,
                "memory_bytes": 68719476736,
                "accelerator": "nvidia.com/gpu",
                "accelerator_count": 2,
                "replicas": 1,
            },
            "priority": 50,
        }
    )

    to_state: Literal["pending"] = after("pending")
    name: str = Field(min_length=1, max_length=200, description="A human name for the job.")
    template_id: Id | None = Field(default=None, description="The job template it was created from.")
    dataset_version_ids: list[Id] = Field(min_length=1, description="The dataset versions it trains on.")
    base_model_version_id: Id | None = Field(default=None, description="The model version it fine-tunes.")
    base_model_id: Id | None = Field(
        default=None, description="The hub's base model it fine-tunes (when not a registered model version)."
    )
    method: Literal["full", "lora", "qlora", "p_tuning", "prefix_tuning", "sft", "dpo", "ppo"] = Field(
        default="full", description="Training method (full-parameter, a PEFT method, or an alignment method)."
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="Hyper-parameters as given.")
    resources: ResourceRequest = Field(description="The compute it asks for.")
    priority: int = Field(default=0, ge=0, le=1000, description="Queue priority; higher runs first.")


class TrainingJobQueued(TrainingJobEvent):
    """A job was submitted to the scheduler and waits for an allocation."""

    event_type: ClassVar[str] = "forge.training.job.queued.v1"
    model_config = example(
        {
            **_JOB,
            "from_state": "pending",
            "to_state": "queued",
            "allocation_id": _ALLOCATION,
            "queue": "acme-research",
        }
    )

    from_state: Literal["pending"] = before()
    to_state: Literal["queued"] = after("queued")
    allocation_id: Id = Field(description="The scheduler allocation requested for it.")
    queue: str = Field(min_length=1, description="The scheduler queue it waits in.")


class TrainingJobStarted(TrainingJobEvent):
    """A job's processes started on the compute backend."""

    event_type: ClassVar[str] = "forge.training.job.started.v1"
    model_config = example(
        {
            **_JOB,
            "from_state": "queued",
            "to_state": "running",
            "allocation_id": _ALLOCATION,
            "backend": "volcano",
            "attempt": 1,
            "resumed_from_checkpoint_uri": None,
        }
    )

    from_state: Literal["queued"] = before()
    to_state: Literal["running"] = after("running")
    allocation_id: Id = Field(description="The allocation it runs on.")
    backend: Literal["local", "volcano"] = Field(description="Where it runs.")
    attempt: int = Field(default=1, ge=1, description="Which attempt (a requeue after preemption adds one).")
    resumed_from_checkpoint_uri: S3Uri | None = Field(
        default=None, description="The checkpoint it resumed from."
    )


class TrainingJobPaused(TrainingJobEvent):
    """A running job was paused after writing a checkpoint; its accelerators are freed."""

    event_type: ClassVar[str] = "forge.training.job.paused.v1"
    model_config = example(
        {
            **_JOB,
            "actor": "alice",
            "from_state": "running",
            "to_state": "paused",
            "checkpoint_uri": _CHECKPOINT,
            "step": 1200,
        }
    )

    from_state: Literal["running"] = before()
    to_state: Literal["paused"] = after("paused")
    checkpoint_uri: S3Uri | None = Field(default=None, description="The checkpoint it will resume from.")
    step: int | None = Field(default=None, ge=0, description="The training step it paused at.")


class TrainingJobResumed(TrainingJobEvent):
    """A paused job resumed from its checkpoint."""

    event_type: ClassVar[str] = "forge.training.job.resumed.v1"
    model_config = example(
        {
            **_JOB,
            "actor": "alice",
            "from_state": "paused",
            "to_state": "running",
            "checkpoint_uri": _CHECKPOINT,
        }
    )

    from_state: Literal["paused"] = before()
    to_state: Literal["running"] = after("running")
    checkpoint_uri: S3Uri | None = Field(default=None, description="The checkpoint it resumed from.")


class TrainingJobPreempted(TrainingJobEvent):
    """The scheduler preempted a running job for higher-priority work; it will be requeued."""

    event_type: ClassVar[str] = "forge.training.job.preempted.v1"
    model_config = example(
        {
            **_JOB,
            "from_state": "running",
            "to_state": "preempted",
            "allocation_id": _ALLOCATION,
            "checkpoint_uri": _CHECKPOINT,
            "reason": "preempted by a priority-900 job in queue acme-prod",
        }
    )

    from_state: Literal["running"] = before()
    to_state: Literal["preempted"] = after("preempted")
    allocation_id: Id = Field(description="The allocation that was preempted.")
    checkpoint_uri: S3Uri | None = Field(default=None, description="The last checkpoint, to resume from.")
    reason: Text | None = Field(default=None, description="Why, from the scheduler.")


class TrainingJobRequeued(TrainingJobEvent):
    """A preempted job is queued again for a new allocation."""

    event_type: ClassVar[str] = "forge.training.job.requeued.v1"
    model_config = example(
        {
            **_JOB,
            "from_state": "preempted",
            "to_state": "queued",
            "allocation_id": "01956a02-0000-7000-8000-00000000a112",
        }
    )

    from_state: Literal["preempted"] = before()
    to_state: Literal["queued"] = after("queued")
    allocation_id: Id = Field(description="The new allocation requested for it.")


class TrainingJobSucceeded(TrainingJobEvent):
    """A job finished training; its model is in object storage, ready to be registered."""

    event_type: ClassVar[str] = "forge.training.job.succeeded.v1"
    model_config = example(
        {
            **_JOB,
            "from_state": "running",
            "to_state": "succeeded",
            "model_uri": "s3://forge-models/acme/01956a00/final/",
            "metrics": {"train_loss": 0.412, "eval_loss": 0.538, "eval_accuracy": 0.871},
            "checkpoint_uri": "s3://forge-checkpoints/acme/01956a00/step-3600/",
            "steps": 3600,
            "duration_s": 5400.0,
        }
    )

    from_state: Literal["running"] = before()
    to_state: Literal["succeeded"] = after("succeeded")
    model_uri: S3Uri = Field(description="The trained model (weights, config, tokenizer) or LoRA adapter.")
    metrics: Metrics = Field(default_factory=dict, description="Final metrics by name.")
    checkpoint_uri: S3Uri | None = Field(default=None, description="The last checkpoint.")
    steps: int | None = Field(default=None, ge=0, description="Training steps run.")
    duration_s: float = Field(ge=0, description="Wall time spent running.")


class TrainingJobFailed(TrainingJobEvent):
    """A job failed; it can be recreated from its last checkpoint."""

    event_type: ClassVar[str] = "forge.training.job.failed.v1"
    model_config = example(
        {
            **_JOB,
            "from_state": "running",
            "to_state": "failed",
            "error": "CUDA out of memory while allocating 2.00 GiB",
            "exit_code": 1,
            "last_checkpoint_uri": _CHECKPOINT,
        }
    )

    from_state: Literal["pending", "queued", "running", "paused", "preempted"] = before()
    to_state: Literal["failed"] = after("failed")
    error: Text = Field(description="What went wrong, for the user.")
    exit_code: int | None = Field(default=None, description="The training process's exit code, if it exited.")
    last_checkpoint_uri: S3Uri | None = Field(default=None, description="The last checkpoint written.")


class TrainingJobCancelled(TrainingJobEvent):
    """A job was cancelled (stopped) by a user or the platform."""

    event_type: ClassVar[str] = "forge.training.job.cancelled.v1"
    model_config = example(
        {**_JOB, "actor": "alice", "from_state": "paused", "to_state": "cancelled", "reason": "superseded"}
    )

    from_state: Literal["pending", "queued", "running", "paused", "preempted"] = before()
    to_state: Literal["cancelled"] = after("cancelled")
    reason: Text | None = Field(default=None, description="Why.")


class EvaluationJobEvent(EntityEvent):
    """Fields of every evaluation job event; the aggregate is the evaluation job."""

    aggregate_field: ClassVar[str] = "evaluation_id"

    evaluation_id: Id = Field(description="The evaluation job (the aggregate id, the Kafka key).")
    model_version_id: Id | SkipJsonSchema[None] = Field(
        default=None,
        exclude_if=_absent,
        json_schema_extra=_absent_when_none,
        description="The model version it evaluates; absent when the evaluated model is not a registered "
        "version (a training job's output or a base model).",
    )


class EvaluationJobCreated(EvaluationJobEvent):
    """An evaluation of a model version was configured: datasets, metrics and the thresholds to pass."""

    event_type: ClassVar[str] = "forge.training.eval.created.v1"
    model_config = example(
        {
            **_EVAL,
            "actor": "service:registry",
            "to_state": "pending",
            "mode": "automatic",
            "dataset_version_ids": ["01955c00-0000-7000-8000-000000000004"],
            "metrics": ["accuracy", "f1", "rouge_l"],
            "thresholds": {"accuracy": 0.85, "f1": 0.8},
        }
    )

    to_state: Literal["pending"] = after("pending")
    mode: Literal["automatic", "human"] = Field(description="Automatic metrics, or people judging outputs.")
    dataset_version_ids: list[Id] = Field(
        default_factory=list, description="The test sets (their dataset versions); empty when none was named."
    )
    metrics: list[str] = Field(
        min_length=1, description="Metrics to compute (accuracy, f1, bleu, rouge_l, ...)."
    )
    thresholds: Metrics = Field(default_factory=dict, description="Minimum value per metric to pass.")


class EvaluationJobQueued(EvaluationJobEvent):
    """An evaluation waits for compute."""

    event_type: ClassVar[str] = "forge.training.eval.queued.v1"
    model_config = example(
        {**_EVAL, "from_state": "pending", "to_state": "queued", "allocation_id": _ALLOCATION}
    )

    from_state: Literal["pending"] = before()
    to_state: Literal["queued"] = after("queued")
    allocation_id: Id | None = Field(default=None, description="The scheduler allocation requested for it.")


class EvaluationJobStarted(EvaluationJobEvent):
    """An evaluation started running."""

    event_type: ClassVar[str] = "forge.training.eval.started.v1"
    model_config = example({**_EVAL, "from_state": "queued", "to_state": "running", "attempt": 1})

    from_state: Literal["queued"] = before()
    to_state: Literal["running"] = after("running")
    attempt: int = Field(default=1, ge=1, description="Which attempt this is, from 1.")


class EvaluationJobSucceeded(EvaluationJobEvent):
    """An evaluation finished: metrics, whether they pass the thresholds, and the report."""

    event_type: ClassVar[str] = "forge.training.eval.succeeded.v1"
    model_config = example(
        {
            **_EVAL,
            "from_state": "running",
            "to_state": "succeeded",
            "metrics": {"accuracy": 0.83, "f1": 0.81, "rouge_l": 0.44},
            "passed": False,
            "failed_checks": ["accuracy 0.83 < 0.85"],
            "report_uri": "s3://forge-reports/acme/01956b00/report.json",
            "outputs_uri": "s3://forge-reports/acme/01956b00/outputs.jsonl",
        }
    )

    from_state: Literal["running"] = before()
    to_state: Literal["succeeded"] = after("succeeded")
    metrics: Metrics = Field(description="Computed metrics by name.")
    passed: bool | SkipJsonSchema[None] = Field(
        default=None,
        exclude_if=_absent,
        json_schema_extra=_absent_when_none,
        description="Whether every threshold the evaluation was given was met; absent when it was given "
        "none (nothing was judged: see `not_judged_reason`).",
    )
    failed_checks: list[str] = Field(default_factory=list, description="Thresholds not met, for people.")
    not_judged_reason: Text | None = Field(
        default=None, description="Why `passed` is absent, e.g. no thresholds were given."
    )
    report_uri: S3Uri = Field(description="The evaluation report.")
    outputs_uri: S3Uri | None = Field(default=None, description="The actual model inputs and outputs, JSONL.")


class EvaluationJobFailed(EvaluationJobEvent):
    """An evaluation could not complete (not the same as a model failing it: see `passed`)."""

    event_type: ClassVar[str] = "forge.training.eval.failed.v1"
    model_config = example(
        {**_EVAL, "from_state": "running", "to_state": "failed", "error": "test set version is archived"}
    )

    from_state: Literal["pending", "queued", "running"] = before()
    to_state: Literal["failed"] = after("failed")
    error: Text = Field(description="What went wrong, for the user.")


class EvaluationJobCancelled(EvaluationJobEvent):
    """An evaluation was cancelled."""

    event_type: ClassVar[str] = "forge.training.eval.cancelled.v1"
    model_config = example(
        {**_EVAL, "actor": "alice", "from_state": "queued", "to_state": "cancelled", "reason": None}
    )

    from_state: Literal["pending", "queued", "running"] = before()
    to_state: Literal["cancelled"] = after("cancelled")
    reason: Text | None = Field(default=None, description="Why.")
