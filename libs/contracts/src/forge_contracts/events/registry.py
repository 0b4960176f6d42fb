"""Events of the registry service: model versions and their release gate (topic `forge.registry.events`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from forge_contracts.events.base import Actor, EntityEvent, Id, Metrics, S3Uri, Text, after, before, example

_VERSION = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-04T09:00:00Z",
    "version_id": "01956a80-5555-7666-8777-888899990000",
    "model_id": "01956a70-0000-7000-8000-0000000000b1",
    "model_name": "qwen-support",
    "version": 7,
}
_EVALUATION = "01956b00-1234-7abc-8def-0123456789ab"
_REPORT = "s3://forge-reports/acme/01956b00/report.json"


class ModelVersionEvent(EntityEvent):
    """Fields of every model version event; the aggregate is the version."""

    aggregate_field: ClassVar[str] = "version_id"

    version_id: Id = Field(description="The model version (the aggregate id, the Kafka key).")
    model_id: Id = Field(description="The model (project) it is a version of.")
    model_name: str = Field(min_length=1, max_length=200, description="The model's name.")
    version: int = Field(ge=1, description="The version number within the model: 1, 2, 3, ...")


class ModelVersionRegistered(ModelVersionEvent):
    """A model version was registered (from a training job, an import or the hub)."""

    event_type: ClassVar[str] = "forge.registry.version.registered.v1"
    model_config = example(
        {
            **_VERSION,
            "actor": "service:training",
            "to_state": "registered",
            "artifact_uri": "s3://forge-models/acme/01956a00/final/",
            "framework": "transformers",
            "source": "training",
            "training_job_id": "01956a00-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
            "base_model_version_id": "01956800-0000-7000-8000-0000000000aa",
            "dataset_version_ids": ["01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60"],
            "metrics": {"eval_loss": 0.538},
        }
    )

    to_state: Literal["registered"] = after("registered")
    artifact_uri: S3Uri = Field(description="Where its files are.")
    framework: Literal["pytorch", "transformers", "tensorflow", "onnx", "other"] = Field(
        description="The framework its weights are for."
    )
    source: Literal["training", "import", "hub"] = Field(description="How it got here.")
    training_job_id: Id | None = Field(
        default=None, description="The training job that produced it (lineage)."
    )
    base_model_version_id: Id | None = Field(default=None, description="The model it was fine-tuned from.")
    dataset_version_ids: list[Id] = Field(default_factory=list, description="Datasets it was trained on.")
    metrics: Metrics = Field(default_factory=dict, description="Training metrics, by name.")


class ModelVersionEvaluationStarted(ModelVersionEvent):
    """An evaluation of this version started (again, after a failed one)."""

    event_type: ClassVar[str] = "forge.registry.version.evaluation_started.v1"
    model_config = example(
        {**_VERSION, "from_state": "registered", "to_state": "evaluating", "evaluation_id": _EVALUATION}
    )

    from_state: Literal["registered", "evaluation_failed"] = before()
    to_state: Literal["evaluating"] = after("evaluating")
    evaluation_id: Id = Field(description="The evaluation job.")


class ModelVersionEvaluationAborted(ModelVersionEvent):
    """The evaluation could not complete (failed or cancelled); the version is back to registered."""

    event_type: ClassVar[str] = "forge.registry.version.evaluation_aborted.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "evaluating",
            "to_state": "registered",
            "evaluation_id": _EVALUATION,
            "reason": "evaluation job failed: test set version is archived",
        }
    )

    from_state: Literal["evaluating"] = before()
    to_state: Literal["registered"] = after("registered")
    evaluation_id: Id = Field(description="The evaluation job.")
    reason: Text = Field(description="Why.")


class ModelVersionEvaluationPassed(ModelVersionEvent):
    """The version met every evaluation threshold: it may be released."""

    event_type: ClassVar[str] = "forge.registry.version.evaluation_passed.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "evaluating",
            "to_state": "evaluation_passed",
            "evaluation_id": _EVALUATION,
            "metrics": {"accuracy": 0.88, "f1": 0.84},
            "report_uri": _REPORT,
        }
    )

    from_state: Literal["evaluating"] = before()
    to_state: Literal["evaluation_passed"] = after("evaluation_passed")
    evaluation_id: Id = Field(description="The evaluation job.")
    metrics: Metrics = Field(description="Its metrics, by name.")
    report_uri: S3Uri = Field(description="The evaluation report.")


class ModelVersionEvaluationFailed(ModelVersionEvent):
    """The version missed an evaluation threshold: it cannot be released without an audited override."""

    event_type: ClassVar[str] = "forge.registry.version.evaluation_failed.v1"
    model_config = example(
        {
            **_VERSION,
            "from_state": "evaluating",
            "to_state": "evaluation_failed",
            "evaluation_id": _EVALUATION,
            "metrics": {"accuracy": 0.83, "f1": 0.81},
            "failed_checks": ["accuracy 0.83 < 0.85"],
            "report_uri": _REPORT,
        }
    )

    from_state: Literal["evaluating"] = before()
    to_state: Literal["evaluation_failed"] = after("evaluation_failed")
    evaluation_id: Id = Field(description="The evaluation job.")
    metrics: Metrics = Field(description="Its metrics, by name.")
    failed_checks: list[Text] = Field(min_length=1, description="The thresholds it missed.")
    report_uri: S3Uri = Field(description="The evaluation report.")


class ModelVersionReleased(ModelVersionEvent):
    """A version that passed evaluation was released: it can now be delivered."""

    event_type: ClassVar[str] = "forge.registry.version.released.v1"
    model_config = example(
        {
            **_VERSION,
            "actor": "alice",
            "from_state": "evaluation_passed",
            "to_state": "released",
            "evaluation_id": _EVALUATION,
            "alias": "production",
        }
    )

    from_state: Literal["evaluation_passed"] = before()
    to_state: Literal["released"] = after("released")
    evaluation_id: Id = Field(description="The passed evaluation that gates the release.")
    alias: str | None = Field(
        default=None, max_length=64, description="An alias it now carries, e.g. `production`."
    )
    notes: Text | None = Field(default=None, description="Release notes.")


class ModelVersionReleaseOverridden(ModelVersionEvent):
    """A version that failed evaluation was released anyway by an authorised approver (audited)."""

    event_type: ClassVar[str] = "forge.registry.version.release_overridden.v1"
    model_config = example(
        {
            **_VERSION,
            "actor": "erin",
            "from_state": "evaluation_failed",
            "to_state": "released",
            "evaluation_id": _EVALUATION,
            "approved_by": "erin",
            "reason": "accuracy gap within noise; customer deadline, tracked in RISK-42",
            "failed_checks": ["accuracy 0.83 < 0.85"],
        }
    )

    from_state: Literal["evaluation_failed"] = before()
    to_state: Literal["released"] = after("released")
    evaluation_id: Id = Field(description="The failed evaluation being overridden.")
    approved_by: Actor = Field(description="The authorised person who approved the override.")
    reason: Text = Field(description="Why the gate was overridden; kept for audit.")
    failed_checks: list[Text] = Field(default_factory=list, description="The thresholds it missed.")
    alias: str | None = Field(default=None, max_length=64, description="An alias it now carries.")


class ModelVersionDelivered(ModelVersionEvent):
    """A released version was delivered to the inference platform (by a delivery order)."""

    event_type: ClassVar[str] = "forge.registry.version.delivered.v1"
    model_config = example(
        {
            **_VERSION,
            "actor": "service:delivery",
            "from_state": "released",
            "to_state": "delivered",
            "delivery_order_id": "01956c00-0000-7000-8000-0000000000d1",
            "bundle_uri": "s3://forge-bundles/acme/qwen-support/7/",
        }
    )

    from_state: Literal["released"] = before()
    to_state: Literal["delivered"] = after("delivered")
    delivery_order_id: Id = Field(description="The delivery order that delivered it.")
    bundle_uri: S3Uri = Field(description="The delivered bundle.")


class ModelVersionDeprecated(ModelVersionEvent):
    """A released or delivered version is deprecated, e.g. replaced by a newer one or rolled back."""

    event_type: ClassVar[str] = "forge.registry.version.deprecated.v1"
    model_config = example(
        {
            **_VERSION,
            "actor": "alice",
            "from_state": "delivered",
            "to_state": "deprecated",
            "reason": "replaced by version 8",
            "replaced_by_version_id": "01956d00-0000-7000-8000-000000000008",
        }
    )

    from_state: Literal["released", "delivered"] = before()
    to_state: Literal["deprecated"] = after("deprecated")
    reason: Text | None = Field(default=None, description="Why.")
    replaced_by_version_id: Id | None = Field(default=None, description="The version to use instead.")


class ModelVersionReinstated(ModelVersionEvent):
    """A deprecated version was released again: a rollback to it."""

    event_type: ClassVar[str] = "forge.registry.version.reinstated.v1"
    model_config = example(
        {
            **_VERSION,
            "actor": "alice",
            "from_state": "deprecated",
            "to_state": "released",
            "reason": "version 8 raised P99 latency",
            "rolled_back_from_version_id": "01956d00-0000-7000-8000-000000000008",
        }
    )

    from_state: Literal["deprecated"] = before()
    to_state: Literal["released"] = after("released")
    reason: Text = Field(description="Why it is rolled back to.")
    rolled_back_from_version_id: Id | None = Field(default=None, description="The version it replaces again.")


class ModelVersionArchived(ModelVersionEvent):
    """A version was archived: kept for lineage and audit only."""

    event_type: ClassVar[str] = "forge.registry.version.archived.v1"
    model_config = example({**_VERSION, "actor": "alice", "from_state": "deprecated", "to_state": "archived"})

    from_state: Literal[
        "registered", "evaluation_passed", "evaluation_failed", "released", "delivered", "deprecated"
    ] = before()
    to_state: Literal["archived"] = after("archived")
    reason: Text | None = Field(default=None, description="Why.")
