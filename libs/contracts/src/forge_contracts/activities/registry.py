"""Activities of the registry service (task queue `forge-registry`): register a trained model version,
record its evaluation against the release gate, release it, and mark it delivered; resolve a base model
of the hub or a model version (tenant-checked) to where its files are, for the services that read them.

A workflow calls them by name with these models, e.g.

    registered = await workflow.execute_activity(
        REGISTER_MODEL_VERSION, RegisterVersion(...), result_type=RegisteredVersion,
        task_queue=TASK_QUEUE, start_to_close_timeout=timedelta(seconds=30),
    )

Every activity is idempotent: `register_model_version` by training job id, `record_evaluation` by
evaluation id, `release_version` and `mark_delivered` by the state they lead to; the `resolve_*` ones
only read (another tenant's model is `NotFound`). A request the release
gate refuses (release of a version whose evaluation failed, delivery of a version not released) fails
with a non-retryable `ApplicationError` whose `type` is one of `GATE_ERROR_TYPES`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from forge_contracts.events.base import Actor, Id, S3Uri, Sha256, TenantId, Text

TASK_QUEUE = "forge-registry"
"""The registry's task queue."""

REGISTER_MODEL_VERSION = "register_model_version"
RECORD_EVALUATION = "record_evaluation"
RELEASE_VERSION = "release_version"
OVERRIDE_RELEASE = "override_release"
MARK_DELIVERED = "mark_delivered"
DESCRIBE_VERSION = "describe_version"
RESOLVE_BASE_MODEL = "resolve_base_model"
RESOLVE_MODEL_VERSION = "resolve_model_version"

RELEASE_BLOCKED = "ReleaseBlocked"
"""ApplicationError type: the version's evaluation failed (only an audited override can release it)."""
ILLEGAL_TRANSITION = "IllegalTransition"
"""ApplicationError type: the version's state does not allow the move (e.g. delivery before release)."""
NOT_FOUND = "NotFound"
"""ApplicationError type: no such project, version or base model for this tenant."""
INVALID_REQUEST = "InvalidRequest"
"""ApplicationError type: the request makes no sense (e.g. no gate thresholds anywhere)."""
CONFLICT = "Conflict"
"""ApplicationError type: the request conflicts with what is registered (e.g. a job in another project)."""
GATE_ERROR_TYPES = (RELEASE_BLOCKED, ILLEGAL_TRANSITION, NOT_FOUND, INVALID_REQUEST, CONFLICT)
"""Every non-retryable error type the registry's activities raise."""


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"must be plain JSON without NaN or Infinity ({error})") from error
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]
"""A JSON object that PostgreSQL's jsonb accepts (no NaN or Infinity anywhere in it)."""
FiniteMetrics = dict[str, Annotated[float, Field(allow_inf_nan=False)]]
"""Metrics by name, finite numbers only."""

Framework = Literal["pytorch", "transformers", "tensorflow", "onnx", "other"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetVersionRef(_Model):
    """A dataset version a model was trained on, with the content hash that pins it (lineage)."""

    id: Id = Field(description="The dataset version.")
    content_hash: Sha256 = Field(
        description="The SHA-256 of its manifest, as the dataset service published it."
    )


class Threshold(_Model):
    """A bound one metric must respect to pass the release gate."""

    min: float | None = Field(default=None, description="The metric must be at least this.")
    max: float | None = Field(default=None, description="The metric must be at most this.")

    @model_validator(mode="after")
    def _some_bound(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("`min` is greater than `max`")
        return self


Thresholds = dict[str, Threshold]
"""Gate thresholds by metric name, e.g. `{"perplexity": {"max": 50}, "bleu": {"min": 5}}`."""


class RegisterVersion(_Model):
    """Register the model a training job produced as a new version of a model project."""

    tenant_id: TenantId
    project_id: Id = Field(description="The model project (seed table model_project).")
    training_job_id: Id = Field(
        description="The producing job; registering it twice returns the same version."
    )
    artifact_uri: S3Uri = Field(description="The merged weights (or adapter) in object storage.")
    framework: Framework = "transformers"
    base_model_id: Id | None = Field(default=None, description="The base model it was fine-tuned from.")
    dataset_versions: list[DatasetVersionRef] = Field(default_factory=list, max_length=100)
    hyperparameters: JsonObject = Field(default_factory=dict)
    metrics: FiniteMetrics = Field(default_factory=dict, description="Training metrics, by name.")
    actor: Actor | None = None


class RegisteredVersion(_Model):
    """The version registered for a training job (`created` is false when it existed already)."""

    version_id: Id
    project_id: Id
    version: int = Field(ge=1)
    state: str
    created: bool


class EvaluationOutcome(_Model):
    """The result of one evaluation run of a version, to be judged by the release gate."""

    tenant_id: TenantId
    version_id: Id
    evaluation_id: Id = Field(description="The evaluation job; recording it twice has one effect.")
    metrics: FiniteMetrics = Field(description="The evaluation's metrics, by name.")
    report: JsonObject = Field(default_factory=dict, description="The evaluation report (EV-4).")
    report_uri: S3Uri | None = Field(
        default=None, description="Where the report is; absent: the registry stores it in object storage."
    )
    thresholds: Thresholds | None = Field(
        default=None, description="Gate thresholds; absent: the project's gate configuration."
    )
    actor: Actor | None = None


class GateDecision(_Model):
    """What the release gate decided about one evaluation."""

    version_id: Id
    evaluation_id: Id
    passed: bool
    may_release: bool = Field(description="Whether `release_version` will now succeed.")
    failed_checks: list[Text] = Field(default_factory=list)
    state: str = Field(description="The version's state after the decision.")
    report_uri: S3Uri


class ReleaseRequest(_Model):
    """Release a version whose evaluation passed."""

    tenant_id: TenantId
    version_id: Id
    alias: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    notes: Text | None = None
    actor: Actor | None = None


class OverrideReleaseRequest(_Model):
    """Release a version whose evaluation failed: an audited override by a named approver."""

    tenant_id: TenantId
    version_id: Id
    approved_by: str = Field(min_length=1, max_length=256)
    reason: Text
    actor: Actor | None = None


class ReleasedVersion(_Model):
    """A released version."""

    version_id: Id
    version: int = Field(ge=1)
    state: str
    artifact_uri: S3Uri


class MarkDelivered(_Model):
    """Record that a delivery order delivered a released version to the inference platform."""

    tenant_id: TenantId
    version_id: Id
    delivery_order_id: Id
    bundle_uri: S3Uri
    actor: Actor | None = None


class DeliveredVersion(_Model):
    """A delivered version."""

    version_id: Id
    state: str
    delivery_order_id: Id
    bundle_uri: S3Uri


class DescribeVersion(_Model):
    """Ask the registry about one version of the tenant (e.g. delivery, before it packages one)."""

    tenant_id: TenantId
    version_id: Id
    actor: Actor | None = None


class VersionDescription(_Model):
    """A version as the registry knows it: where its artifact is and whether it may be delivered.

    `deliverable` is the registry's word: the version is released (through the gate, or by an audited
    override) and not delivered, deprecated or archived since. A version of another tenant, or none at
    all, is a `NotFound` error instead."""

    version_id: Id
    project_id: Id
    project_name: str
    version: int = Field(ge=1)
    state: str
    deliverable: bool
    artifact_uri: S3Uri = Field(description="Where the version's model files are (as registered).")
    framework: Framework
    evaluation_id: Id | None = None
    evaluation_passed: bool | None = None
    released_by_override: bool = Field(
        default=False, description="Released by an approver's override of a failed evaluation."
    )


class BaseModelRef(_Model):
    """A base model of the hub, as seen by `tenant_id`."""

    tenant_id: TenantId
    base_model_id: Id


class ResolvedBaseModel(_Model):
    """A base model of the hub and where its files are."""

    base_model_id: Id
    name: str
    version: str
    uri: S3Uri = Field(description="The prefix holding its Hugging Face model directory.")
    architecture: str
    framework: Framework


class ModelVersionRef(_Model):
    """A model version, as seen by `tenant_id`."""

    tenant_id: TenantId
    version_id: Id


class ResolvedModelVersion(_Model):
    """A model version and where its weights are."""

    version_id: Id
    project_id: Id
    version: int = Field(ge=1)
    state: str
    artifact_uri: S3Uri
    training_job_id: Id | None = None
    base_model_id: Id | None = None


__all__ = [
    "CONFLICT",
    "DESCRIBE_VERSION",
    "GATE_ERROR_TYPES",
    "ILLEGAL_TRANSITION",
    "INVALID_REQUEST",
    "MARK_DELIVERED",
    "NOT_FOUND",
    "OVERRIDE_RELEASE",
    "RECORD_EVALUATION",
    "REGISTER_MODEL_VERSION",
    "RELEASE_BLOCKED",
    "RELEASE_VERSION",
    "RESOLVE_BASE_MODEL",
    "RESOLVE_MODEL_VERSION",
    "TASK_QUEUE",
    "BaseModelRef",
    "DatasetVersionRef",
    "DeliveredVersion",
    "DescribeVersion",
    "EvaluationOutcome",
    "FiniteMetrics",
    "Framework",
    "GateDecision",
    "JsonObject",
    "MarkDelivered",
    "ModelVersionRef",
    "OverrideReleaseRequest",
    "RegisterVersion",
    "RegisteredVersion",
    "ReleaseRequest",
    "ReleasedVersion",
    "ResolvedBaseModel",
    "ResolvedModelVersion",
    "Threshold",
    "Thresholds",
    "VersionDescription",
]
