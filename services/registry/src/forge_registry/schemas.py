"""Request and response models of the registry's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from forge_contracts.activities.registry import DatasetVersionRef, Framework, JsonObject, Threshold
from forge_contracts.events.base import Id, S3Uri
from forge_kit.types import FiniteFloat, Line, NonBlankText, PositiveInt64, Text
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Reason = Annotated[NonBlankText, Field(min_length=1, max_length=4000)]
MetricName = Annotated[str, Field(min_length=1, max_length=200)]
Metrics = dict[MetricName, FiniteFloat]
"""Metrics by name: finite JSON numbers (no NaN, ±Infinity, bool or string)."""


class GateThreshold(Threshold):
    """A bound one metric must respect to pass the release gate (finite numbers only)."""

    min: FiniteFloat | None = Field(default=None, description="The metric must be at least this.")
    max: FiniteFloat | None = Field(default=None, description="The metric must be at most this.")


def _as_data(value: Any) -> Any:
    # The registry's activities build requests from the contract's models: validate them as data.
    return value.model_dump() if isinstance(value, BaseModel) else value


Thresholds = dict[MetricName, Annotated[GateThreshold, BeforeValidator(_as_data)]]
"""Gate thresholds by metric name, e.g. `{"perplexity": {"max": 50}, "bleu": {"min": 5}}`."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Model projects


class ProjectCreate(_Body):
    name: Name
    desc: Text = Field(default="", max_length=4000)
    path: Line = Field(default="", max_length=1000)
    train_framework: Line = Field(default="", max_length=100)
    inference_framework: Line = Field(default="", max_length=100)
    metrics_url: Line = Field(default="", max_length=2000)
    gate: Thresholds = Field(
        default_factory=dict,
        description='Release-gate thresholds, e.g. {"perplexity": {"max": 50}, "bleu": {"min": 5}}.',
    )


class GateUpdate(_Body):
    gate: Thresholds


class ProjectView(_View):
    id: str
    name: str
    desc: str
    path: str
    train_framework: str
    inference_framework: str
    metrics_url: str
    gate: dict[str, Any]
    created_at: datetime


class VersionSummary(_View):
    """A version as its project page shows it: training, evaluation and delivery status together."""

    id: str
    version: int
    state: str
    training_job_id: str | None
    evaluation_id: str | None
    evaluation_passed: bool | None
    delivery_order_id: str | None
    tags: list[str]
    created_at: datetime


class ProjectStatus(BaseModel):
    versions_by_state: dict[str, int]
    latest_version: int | None
    latest_released_version: int | None
    latest_delivered_version: int | None


class ProjectDetail(ProjectView):
    versions: list[VersionSummary]
    status: ProjectStatus


# Base models (the hub)


class BaseModelCreate(_Body):
    name: Name
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    uri: S3Uri = Field(description="Where its files are, e.g. s3://forge-models/base/tiny-llama/")
    architecture: Line = Field(min_length=1, max_length=200)
    parameter_count: PositiveInt64
    intended_use: Text = Field(default="", max_length=4000)
    licence: Line = Field(default="", max_length=200)
    framework: Framework = "transformers"
    description: Text = Field(default="", max_length=4000)


class BaseModelView(_View):
    id: str
    name: str
    version: str
    uri: str
    architecture: str
    parameter_count: int
    intended_use: str
    licence: str
    framework: str
    description: str
    created_at: datetime


# Model versions


class VersionCreate(_Body):
    artifact_uri: S3Uri
    framework: Framework = "transformers"
    training_job_id: Id | None = Field(
        default=None, description="The producing job; registering it again returns the same version."
    )
    base_model_id: Id | None = None
    dataset_versions: list[DatasetVersionRef] = Field(default_factory=list, max_length=100)
    hyperparameters: JsonObject = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class VersionView(_View):
    id: str
    project_id: str
    version: int
    state: str
    sequence: int
    artifact_uri: str
    framework: str
    source: str
    training_job_id: str | None
    base_model_id: str | None
    dataset_versions: list[dict[str, Any]]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    tags: list[str]
    evaluation_id: str | None
    evaluation_passed: bool | None
    delivery_order_id: str | None
    bundle_uri: str | None
    created_at: datetime
    updated_at: datetime


class StartEvaluation(_Body):
    evaluation_id: Id


class AbortEvaluation(_Body):
    reason: Reason


class EvaluationResult(_Body):
    evaluation_id: Id | None = Field(default=None, description="Default: the evaluation in progress.")
    metrics: Metrics
    report: JsonObject = Field(default_factory=dict, description="The evaluation report (EV-4).")
    report_uri: S3Uri | None = Field(default=None, description="Absent: the registry stores the report.")
    thresholds: Thresholds | None = Field(default=None, description="Absent: the project's gate.")


class EvaluationView(_View):
    id: str
    version_id: str
    passed: bool
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    failed_checks: list[str]
    checks: list[str]
    report: dict[str, Any]
    report_uri: str
    recorded_at: datetime


class Release(_Body):
    alias: Tag | None = None
    notes: Reason | None = None


class OverrideRelease(_Body):
    # Optional here on purpose: the model-version machine itself refuses an override without them (409).
    approved_by: Line | None = Field(default=None, max_length=256)
    reason: Text | None = Field(default=None, max_length=4000)
    alias: Tag | None = None


class Delivered(_Body):
    delivery_order_id: Id
    bundle_uri: S3Uri


class Deprecate(_Body):
    reason: Reason | None = None
    replaced_by_version_id: Id | None = None


class Reinstate(_Body):
    reason: Reason
    rolled_back_from_version_id: Id | None = None


class Archive(_Body):
    reason: Reason | None = None


class TagsUpdate(_Body):
    tags: list[Tag] = Field(max_length=50)


class AuditView(_View):
    id: str
    version_id: str
    action: str
    from_state: str | None
    to_state: str
    actor: str | None
    approved_by: str | None
    reason: str | None
    details: dict[str, Any]
    at: datetime


class VersionRef(BaseModel):
    id: str
    version: int
    state: str
    base_model_id: str | None


class Comparison(BaseModel):
    """Two versions side by side (MR-2, EV-3): `delta` is b - a."""

    a: VersionRef
    b: VersionRef
    metrics: dict[str, dict[str, float | None]]
    evaluation_metrics: dict[str, dict[str, float | None]]
    hyperparameters: dict[str, dict[str, Any]]
    datasets: dict[str, list[str]]
