"""Request and response models of the training API: training jobs, then evaluation jobs.
Hyper-parameters and LoRA settings carry the training runtime's field names and limits (TrainSpec), so a
bad value is a 422 naming the field here, not a failed run later. Inputs are named by Forge id (a dataset
version and a file of it, the hub's base model, a training job or a model version), never by an object
URI: the service resolves them through the owning services, which check the caller's tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from forge_contracts.activities.dataset import RECORD_FILE_PATTERN, VersionSelector
from forge_contracts.events.base import Id, ResourceRequest
from forge_kit.types import (
    FiniteFloat,
    NonBlankText,
    NonNegativeInt32,
    NonNegativeInt64,
    PositiveInt32,
    PositiveInt64,
)
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

FileName = Annotated[str, StringConstraints(pattern=RECORD_FILE_PATTERN)]
"""A file of a dataset version, by its name in the version's manifest (e.g. `train.jsonl`)."""
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")]
ModuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hyperparameters(_Body):
    """How to train. One step is one optimizer update (`batch_size * gradient_accumulation_steps`
    examples); `max_steps`, when set, wins over `epochs`."""

    epochs: PositiveInt32 = Field(1, le=1000)
    max_steps: PositiveInt64 | None = Field(None, le=10_000_000)
    learning_rate: FiniteFloat = Field(1e-3, gt=0, le=1)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: NonNegativeInt64 = Field(0)
    weight_decay: FiniteFloat = Field(0.0, ge=0, le=1)
    max_grad_norm: FiniteFloat | None = Field(1.0, gt=0)
    batch_size: PositiveInt32 = Field(8, le=4096)
    gradient_accumulation_steps: PositiveInt32 = Field(1, le=1024)
    max_seq_length: PositiveInt32 = Field(256, ge=8, le=32768)
    seed: NonNegativeInt64 = Field(0)
    log_every_steps: PositiveInt64 = Field(1)
    eval_every_steps: PositiveInt64 | None = Field(None)
    checkpoint_every_steps: PositiveInt64 | None = Field(None)

    @model_validator(mode="after")
    def _warmup_within_steps(self) -> Hyperparameters:
        if self.max_steps is not None and self.warmup_steps > self.max_steps:
            raise ValueError(
                f"hyperparameters.warmup_steps ({self.warmup_steps}) exceeds max_steps ({self.max_steps})"
            )
        return self


class LoraConfig(_Body):
    """LoRA adapter settings (FT-11)."""

    rank: PositiveInt32 = Field(8, le=1024)
    alpha: PositiveInt32 = Field(16, le=4096)
    dropout: FiniteFloat = Field(0.05, ge=0, lt=1)
    target_modules: list[ModuleName] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    modules_to_save: list[ModuleName] = Field(default_factory=list)


class BaseModelRef(_Body):
    """The model to fine-tune: a base model of the tenant's hub (the registry's `/base-models`)."""

    id: Id = Field(description="The registry's base model id.")


class DatasetFiles(_Body):
    """A published version of one of the tenant's datasets, and which of its files to train on."""

    dataset_id: Id
    version_id: VersionSelector = Field(
        description="The dataset version (published or deprecated), by id or by an alias of the dataset "
        "(`latest`, `golden`): an alias is resolved when the request is made and the job records the id."
    )
    train_file: FileName = Field(default="train.jsonl", description="The training file, by its name.")
    validation_file: FileName | None = Field(
        default=None, description="The validation file, by its name (e.g. `validation.jsonl`)."
    )


class Resources(ResourceRequest):
    """Compute for the job, as a request: per replica, and how many replicas must run together; JSON
    numbers within what the scheduler's BIGINT columns hold."""

    model_config = ConfigDict(extra="forbid")

    cpu_cores: FiniteFloat = Field(gt=0, le=10_000, description="CPU cores per replica.")
    memory_bytes: PositiveInt64 = Field(description="Memory per replica.")
    accelerator_count: NonNegativeInt32 = Field(default=0, le=1024, description="Accelerators per replica.")
    replicas: PositiveInt32 = Field(default=1, le=1024, description="Replicas that must be placed together.")


class TrainingSpec(_Body):
    """How a LoRA fine-tuning job trains and what it asks the scheduler for (not what it reads)."""

    name: NonBlankText = Field(min_length=1, max_length=200)
    project_id: Id
    data_format: Literal["auto", "alpaca", "sharegpt"] = "auto"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)  # type: ignore[arg-type]
    lora: LoraConfig = Field(default_factory=LoraConfig)  # type: ignore[arg-type]
    resources: Resources = Field(default_factory=lambda: Resources(cpu_cores=2, memory_bytes=4 * 1024**3))
    priority: NonNegativeInt32 = Field(default=0, le=1000)
    scheduler_project_id: Id | None = Field(
        default=None,
        description="The scheduler project whose quota the run uses: the job waits `queued` until the "
        "scheduler admits its allocation. Without it the job runs unscheduled on the training worker.",
    )


class CreateTrainingJob(TrainingSpec):
    """`POST /training-jobs`: a LoRA fine-tuning job of a base model of the hub on a dataset version."""

    base_model: BaseModelRef
    dataset: DatasetFiles

    @model_validator(mode="after")
    def _eval_needs_validation_data(self) -> CreateTrainingJob:
        if self.hyperparameters.eval_every_steps and self.dataset.validation_file is None:
            raise ValueError("hyperparameters.eval_every_steps needs dataset.validation_file")
        return self


class CancelTrainingJob(_Body):
    """`POST /training-jobs/{id}/cancel` (the body is optional)."""

    reason: NonBlankText | None = Field(default=None, min_length=1, max_length=4000)


class Progress(BaseModel):
    step: int
    total_steps: int | None
    percent: float | None
    eta_s: float | None


class Outputs(BaseModel):
    model_uri: str | None = Field(description="The merged model (loads with stock transformers).")
    adapter_uri: str | None
    last_checkpoint_uri: str | None
    last_checkpoint_step: int | None


class TrainingJobView(BaseModel):
    id: str
    name: str
    project_id: str
    kind: str
    method: str
    state: str
    sequence: int
    progress: Progress
    latest_metrics: dict[str, Any]
    outputs: Outputs
    error: str | None
    exit_code: int | None
    attempt: int
    resumed_from_step: int | None
    scheduler_project_id: str | None
    allocation_id: str | None = Field(description="The scheduler's allocation the run holds or held.")
    base_model_id: str | None
    base_model_uri: str
    dataset_id: str | None
    dataset_version_id: str
    hyperparameters: dict[str, Any]
    lora: dict[str, Any]
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingJobList(BaseModel):
    items: list[TrainingJobView]


class MetricPoint(BaseModel):
    step: int
    value: float | None


class MetricSeries(BaseModel):
    name: str
    points: list[MetricPoint]


class MetricsView(BaseModel):
    job_id: str
    series: list[MetricSeries]


class LogLine(BaseModel):
    seq: int
    level: str
    message: str
    logged_at: datetime


class LogsView(BaseModel):
    job_id: str
    lines: list[LogLine]
    next_after: int = Field(description="Pass as `after` to read only newer lines.")


# --- evaluation jobs ------------------------------------------------------------------------------


class EvaluatedModel(_Body):
    """The model to evaluate, by exactly one id: a succeeded training job of the tenant (its merged
    model), a model version in the registry, or a base model of the hub."""

    training_job_id: Id | None = Field(
        default=None, description="A succeeded training job: its merged model."
    )
    model_version_id: Id | None = Field(default=None, description="A model version in the registry.")
    base_model_id: Id | None = Field(default=None, description="A base model of the registry's hub.")

    @model_validator(mode="after")
    def _exactly_one(self) -> EvaluatedModel:
        named = [self.training_job_id, self.model_version_id, self.base_model_id]
        if sum(value is not None for value in named) != 1:
            raise ValueError(
                "name the model by exactly one of training_job_id, model_version_id, base_model_id"
            )
        return self


class TestSet(_Body):
    """The test file: a file (alpaca or sharegpt JSONL) of a published version of one of the tenant's
    datasets."""

    dataset_id: Id
    version_id: VersionSelector = Field(
        description="The dataset version (published or deprecated), by id or by an alias of the dataset "
        "(`latest`, `golden`): an alias is resolved when the request is made and the job records the id."
    )
    file: FileName = Field(default="test.jsonl", description="The test file, by its name in the version.")


class Bound(_Body):
    """What one metric must respect to pass: at least `min`, at most `max` (one or both)."""

    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("`min` is greater than `max`")
        return self


Thresholds = Annotated[dict[MetricName, Bound], Field(min_length=1, max_length=50)]


class EvaluationSettings(_Body):
    """How to evaluate: the test file's format, generation limits and the thresholds to judge by."""

    data_format: Literal["auto", "alpaca", "sharegpt"] = "auto"
    max_new_tokens: PositiveInt32 = Field(32, le=4096, description="Tokens generated per prediction.")
    max_records: PositiveInt32 | None = Field(
        None, le=1_000_000, description="Evaluate only the first N records."
    )
    thresholds: Thresholds | None = Field(
        default=None,
        description='Bounds the metrics must meet to pass, e.g. `{"perplexity": {"max": 50}}`; without them '
        "the evaluation passes no verdict.",
    )


class CreateEvaluationJob(EvaluationSettings):
    """`POST /evaluation-jobs`: evaluate a model on a test set (EV-1) with the runtime's metrics (EV-2),
    judged against `thresholds` when given."""

    model: EvaluatedModel
    test_set: TestSet


class CancelEvaluationJob(_Body):
    """`POST /evaluation-jobs/{id}/cancel` (the body is optional)."""

    reason: NonBlankText | None = Field(default=None, min_length=1, max_length=4000)


class EvaluationProgress(BaseModel):
    phase: str | None = Field(description="queued, downloading, evaluating, uploading or done.")
    attempt: int


class EvaluatedModelView(BaseModel):
    uri: str = Field(description="Where the model's files are (resolved from the id it was named by).")
    training_job_id: str | None
    model_version_id: str | None
    base_model_id: str | None


class TestSetView(BaseModel):
    dataset_id: str | None
    dataset_version_id: str | None
    file: str | None
    uri: str = Field(description="Where the test file is (resolved from the dataset version).")


class EvaluationJobView(BaseModel):
    id: str
    state: str
    sequence: int
    model: EvaluatedModelView
    test_set: TestSetView
    data_format: str
    max_new_tokens: int
    max_records: int | None
    progress: EvaluationProgress
    metrics: dict[str, float] = Field(
        description="perplexity, mean_nll, bleu (0-100), rouge1, rouge2, rougeL, exact_match (0-1)."
    )
    thresholds: dict[str, Any] | None = Field(description="What it is judged against (none: no verdict).")
    passed: bool | None = Field(description="Whether the metrics met every threshold; none: not judged.")
    failed_checks: list[str]
    record_count: int | None
    records_uri: str | None = Field(description="JSONL of {prompt, reference, prediction}.")
    report_uri: str | None = Field(description="JSON report: metrics, config and counts.")
    error: str | None
    exit_code: int | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EvaluationJobList(BaseModel):
    items: list[EvaluationJobView]


class EvaluationRecordView(BaseModel):
    seq: int
    prompt: str
    reference: str
    prediction: str


class EvaluationRecordsView(BaseModel):
    evaluation_id: str
    total: int | None = Field(description="How many records the evaluation kept (none until it succeeded).")
    records: list[EvaluationRecordView]
    next_offset: int | None = Field(description="Pass as `offset` for the next page; none at the end.")
