"""Request and response models of the training API: training jobs, then evaluation jobs.
Hyper-parameters and LoRA settings carry the training runtime's field names and limits (TrainSpec), so a
bad value is a 422 naming the field here, not a failed run later."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from forge_contracts.events.base import Id, ResourceRequest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

S3_PREFIX_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
ObjectKey = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^/\s]")]
ModuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hyperparameters(_Body):
    """How to train. One step is one optimizer update (`batch_size * gradient_accumulation_steps`
    examples); `max_steps`, when set, wins over `epochs`."""

    epochs: int = Field(1, ge=1, le=1000)
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_seq_length: int = Field(256, ge=8, le=32768)
    seed: int = Field(0, ge=0)
    log_every_steps: int = Field(1, ge=1)
    eval_every_steps: int | None = Field(None, ge=1)
    checkpoint_every_steps: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _warmup_within_steps(self) -> Hyperparameters:
        if self.max_steps is not None and self.warmup_steps > self.max_steps:
            raise ValueError(
                f"hyperparameters.warmup_steps ({self.warmup_steps}) exceeds max_steps ({self.max_steps})"
            )
        return self


class LoraConfig(_Body):
    """LoRA adapter settings (FT-11)."""

    rank: int = Field(8, ge=1, le=1024)
    alpha: int = Field(16, ge=1, le=4096)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[ModuleName] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    modules_to_save: list[ModuleName] = Field(default_factory=list)


class BaseModelRef(_Body):
    """The model to fine-tune: an S3 prefix holding a Hugging Face model directory."""

    uri: str = Field(pattern=S3_PREFIX_URI, description="e.g. `s3://forge-models/acme/base/`")
    model_version_id: Id | None = Field(default=None, description="Its model version in the registry.")


class DatasetFiles(_Body):
    """The dataset version's files (from the dataset service's manifest)."""

    version_id: Id = Field(description="The dataset version the files belong to.")
    bucket: str = Field(pattern=BUCKET)
    train_key: ObjectKey = Field(description="Object key of the training JSONL file.")
    validation_key: ObjectKey | None = Field(default=None, description="Object key of the validation file.")


class CreateTrainingJob(_Body):
    """`POST /training-jobs`: a LoRA fine-tuning job."""

    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    project_id: Id
    base_model: BaseModelRef
    dataset: DatasetFiles
    data_format: Literal["auto", "alpaca", "sharegpt"] = "auto"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)  # type: ignore[arg-type]
    lora: LoraConfig = Field(default_factory=LoraConfig)  # type: ignore[arg-type]
    resources: ResourceRequest = Field(
        default_factory=lambda: ResourceRequest(cpu_cores=2, memory_bytes=4 * 1024**3)
    )
    priority: int = Field(default=0, ge=0, le=1000)
    scheduler_project_id: Id | None = Field(
        default=None,
        description="The scheduler project whose quota the run uses: the job waits `queued` until the "
        "scheduler admits its allocation. Without it the job runs unscheduled on the training worker.",
    )

    @model_validator(mode="after")
    def _eval_needs_validation_data(self) -> CreateTrainingJob:
        if self.hyperparameters.eval_every_steps and self.dataset.validation_key is None:
            raise ValueError("hyperparameters.eval_every_steps needs dataset.validation_key")
        return self


class CancelTrainingJob(_Body):
    """`POST /training-jobs/{id}/cancel` (the body is optional)."""

    reason: str | None = Field(default=None, min_length=1, max_length=4000, pattern=r"\S")


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
    base_model_uri: str
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
    """The model to evaluate: an S3 prefix holding a merged Hugging Face model directory."""

    uri: str = Field(pattern=S3_PREFIX_URI, description="e.g. `s3://forge-training/acme/<job id>/merged/`")
    model_version_id: Id | None = Field(default=None, description="Its model version in the registry.")
    training_job_id: Id | None = Field(default=None, description="The training job that produced it.")


class TestSet(_Body):
    """The test file (alpaca or sharegpt JSONL)."""

    bucket: str = Field(pattern=BUCKET)
    key: ObjectKey = Field(description="Object key of the test JSONL file.")
    dataset_version_id: Id | None = Field(default=None, description="The dataset version it belongs to.")


class CreateEvaluationJob(_Body):
    """`POST /evaluation-jobs`: evaluate a model on a test set (EV-1) with the runtime's metrics (EV-2)."""

    model: EvaluatedModel
    test_set: TestSet
    data_format: Literal["auto", "alpaca", "sharegpt"] = "auto"
    max_new_tokens: int = Field(32, ge=1, le=4096, description="Tokens generated per prediction.")
    max_records: int | None = Field(
        None, ge=1, le=1_000_000, description="Evaluate only the first N records."
    )


class CancelEvaluationJob(_Body):
    """`POST /evaluation-jobs/{id}/cancel` (the body is optional)."""

    reason: str | None = Field(default=None, min_length=1, max_length=4000, pattern=r"\S")


class EvaluationProgress(BaseModel):
    phase: str | None = Field(description="queued, downloading, evaluating, uploading or done.")
    attempt: int


class EvaluationJobView(BaseModel):
    id: str
    state: str
    sequence: int
    model: EvaluatedModel
    test_set: TestSet
    data_format: str
    max_new_tokens: int
    max_records: int | None
    progress: EvaluationProgress
    metrics: dict[str, float] = Field(
        description="perplexity, mean_nll, bleu (0-100), rouge1, rouge2, rougeL, exact_match (0-1)."
    )
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
