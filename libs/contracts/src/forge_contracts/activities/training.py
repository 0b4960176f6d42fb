"""Activities of the training service (task queue `forge-training`) and the input of its job workflow.

`TrainingJobWorkflow` (workflow id `training-job:<job id>`) drives one fine-tuning job:

    await workflow.execute_activity(QUEUE_JOB, JobRef(...), result_type=JobStatus, ...)
    outcome = await workflow.execute_activity(
        RUN_TRAINING, JobRef(...), result_type=TrainingOutcome,
        start_to_close_timeout=timedelta(hours=24), heartbeat_timeout=timedelta(seconds=30))

Every activity is idempotent by the job id and the job's state machine: queueing a job that is already
queued (or further) returns its state; `run_training` resumes from the job's newest uploaded checkpoint
when a previous attempt (on this or another worker) stopped mid-run; `fail_job` and `cancel_job` do
nothing to a job that already ended.

Evaluation jobs (EV-1, EV-2, EV-4, EV-5): `EvaluationJobWorkflow` (workflow id
`evaluation-job:<evaluation job id>`, input `EvaluationRequest`) runs one `run_evaluation`:

    result = await workflow.execute_activity(
        RUN_EVALUATION, EvaluationRequest(tenant_id=..., request_key=f"{workflow_id}:evaluate",
        model_uri="s3://bucket/models/x/merged/", test_bucket=..., test_key=...),
        result_type=EvaluationResult, start_to_close_timeout=..., heartbeat_timeout=timedelta(seconds=30))

With `evaluation_job_id=None` the activity creates the evaluation job itself, once per `request_key`
(a repeated call finds the same job and, when it succeeded, returns its result without running again).
A failed evaluation raises a non-retryable ApplicationError carrying the reason. `fail_evaluation` and
`cancel_evaluation` (inputs `FailJob` / `JobRef`, `job_id` = the evaluation job) end an evaluation whose
run could not complete or was cancelled; they do nothing to one that already ended. The model and the
test file an `EvaluationRequest` names must be the tenant's own (its training outputs, its dataset
files); given `thresholds`, the evaluation judges its metrics (`EvaluationResult.passed`).

`ResolveInputsWorkflow` (input `InputsToResolve`, result `ResolvedInputs`) is how the training service
turns the Forge ids a request names (dataset version, base model, model version) into where their files
are: it calls the owning services' activities (`dataset.resolve_version`, `resolve_base_model`,
`resolve_model_version`), which check the tenant, so a job never reads what its tenant may not.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_contracts.activities import dataset as _dataset
from forge_contracts.activities import registry as _registry
from forge_contracts.activities.dataset import ResolvedVersion, VersionSelector
from forge_contracts.activities.registry import ResolvedBaseModel, ResolvedModelVersion, Thresholds
from forge_contracts.activities.scheduler import WorkerResources
from forge_contracts.events.base import Id, TenantId

TASK_QUEUE = "forge-training"
WORKFLOW = "TrainingJobWorkflow"
QUEUE_JOB = "training.queue_job"
RUN_TRAINING = "training.run_training"
FAIL_JOB = "training.fail_job"
CANCEL_JOB = "training.cancel_job"
RUN_EVALUATION = "training.run_evaluation"
FAIL_EVALUATION = "training.fail_evaluation"
CANCEL_EVALUATION = "training.cancel_evaluation"
EVALUATION_WORKFLOW = "EvaluationJobWorkflow"
RESOLVE_INPUTS_WORKFLOW = "ResolveInputsWorkflow"

JobState = Literal["pending", "queued", "running", "paused", "preempted", "succeeded", "failed", "cancelled"]


def workflow_id(job_id: str) -> str:
    """The id of the workflow running job `job_id` (one workflow per job)."""
    return f"training-job:{job_id}"


def evaluation_workflow_id(evaluation_job_id: str) -> str:
    """The id of the workflow running evaluation job `evaluation_job_id` (one workflow per job)."""
    return f"evaluation-job:{evaluation_job_id}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobRef(_Model):
    """Which job an activity acts on."""

    tenant_id: TenantId
    job_id: Id


class JobScheduling(_Model):
    """What the job asks the scheduler for (its `scheduler_project_id` quota)."""

    project_id: Id
    per_worker: WorkerResources
    gang_size: int = Field(default=1, ge=1)
    priority: int = Field(default=0, ge=0, le=1000)
    wait_for_admission_s: float = Field(
        default=86_400.0, gt=0, le=86_400, description="Queued this long: fail."
    )


class TrainingJobInput(_Model):
    """The input of `TrainingJobWorkflow`. With `scheduling` the workflow asks the scheduler for an
    allocation, waits for admission, runs and gives it back; with `allocation_id` the caller already holds
    an admitted one (the chain); with neither the job runs unscheduled on the worker."""

    tenant_id: TenantId
    job_id: Id
    scheduling: JobScheduling | None = None
    allocation_id: Id | None = None
    heartbeat_timeout_s: float = Field(
        default=30.0, gt=0, description="How long `run_training` may go silent before Temporal retries it."
    )
    run_attempts: int = Field(
        default=5, ge=1, description="Attempts of `run_training` (each resumes from the newest checkpoint)."
    )
    run_timeout_s: float = Field(default=24 * 3600.0, gt=0, description="Wall time one attempt may take.")


class QueueJob(JobRef):
    """`queue_job`: the allocation the job waits on and its scheduler queue (none: unscheduled)."""

    allocation_id: Id | None = None
    queue: str | None = Field(default=None, min_length=1)


class JobStatus(_Model):
    """A job's state after an activity."""

    job_id: Id
    state: JobState


class TrainingProgress(_Model):
    """What `run_training` heartbeats while the runtime runs."""

    step: int = Field(ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    checkpoint_step: int | None = Field(default=None, ge=0, description="The newest uploaded checkpoint.")


class TrainingOutcome(_Model):
    """How a run ended: `succeeded` with the model's location, or `failed` with the runtime's error."""

    job_id: Id
    state: Literal["succeeded", "failed", "cancelled"]
    model_uri: str | None = None
    adapter_uri: str | None = None
    steps: int | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
    resumed_from_step: int | None = Field(default=None, ge=0)
    error: str | None = None


class FailJob(_Model):
    """Mark a job failed (when `run_training` ran out of attempts)."""

    tenant_id: TenantId
    job_id: Id
    error: str = Field(min_length=1, max_length=4000)


class EvaluationRequest(BaseModel):
    """Evaluate a merged model on a test file (the input of `run_evaluation` and of
    `EvaluationJobWorkflow`). `request_key` makes the activity idempotent when it creates the job."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    evaluation_job_id: str | None = None  # when None the activity creates the job (idempotent by request_key)
    request_key: str  # idempotency key, e.g. "<workflow id>:evaluate"
    model_uri: str  # s3://bucket/prefix/ of the merged model
    test_bucket: str
    test_key: str
    data_format: Literal["auto", "alpaca", "sharegpt"] = "auto"
    max_new_tokens: int = 32
    max_records: int | None = None
    model_version_id: str | None = None
    training_job_id: str | None = None
    dataset_version_id: str | None = None  # the dataset version the test file belongs to
    thresholds: Thresholds | None = None  # given: the evaluation judges its metrics against them


class EvaluationResult(BaseModel):
    """A succeeded evaluation: its metrics and where its records and report are."""

    model_config = ConfigDict(frozen=True)

    evaluation_job_id: str
    metrics: dict[
        str, float
    ]  # perplexity, bleu, rouge1, rouge2, rougeL, exact_match (as the runtime names them)
    records_uri: str  # s3://... JSONL of {prompt, reference, prediction}
    report_uri: str  # s3://... JSON report (metrics + config + counts)
    passed: bool | None = None  # None: no thresholds were given, nothing was judged
    failed_checks: list[str] = Field(default_factory=list)


class InputsToResolve(_Model):
    """The input of `ResolveInputsWorkflow`: the Forge resources a request names, as seen by its tenant,
    and the task queues of the services that own them."""

    tenant_id: TenantId
    dataset_id: Id | None = None
    dataset_version_id: VersionSelector | None = None
    base_model_id: Id | None = None
    model_version_id: Id | None = None
    dataset_task_queue: str = Field(default=_dataset.TASK_QUEUE, min_length=1)
    registry_task_queue: str = Field(default=_registry.TASK_QUEUE, min_length=1)


class ResolvedInputs(_Model):
    """What each named resource is and where its files are (None: not named)."""

    dataset: ResolvedVersion | None = None
    base_model: ResolvedBaseModel | None = None
    model_version: ResolvedModelVersion | None = None


def resolve_inputs_workflow_id(request_id: str) -> str:
    """The id of one resolution (one per request)."""
    return f"resolve-inputs:{request_id}"
