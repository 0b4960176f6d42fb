"""Temporal activities on the registry's task queue (models in `forge_contracts.activities.registry`).

Each is idempotent, since Temporal retries: registration by training job id, an evaluation by its id,
release and delivery by the state they lead to. What the release gate refuses fails with a non-retryable
`ApplicationError` (a retry could not change the answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from forge_contracts.activities.registry import (
    CONFLICT,
    DESCRIBE_VERSION,
    ILLEGAL_TRANSITION,
    INVALID_REQUEST,
    MARK_DELIVERED,
    NOT_FOUND,
    OVERRIDE_RELEASE,
    RECORD_EVALUATION,
    REGISTER_MODEL_VERSION,
    RELEASE_BLOCKED,
    RELEASE_VERSION,
    RESOLVE_BASE_MODEL,
    RESOLVE_MODEL_VERSION,
    BaseModelRef,
    DeliveredVersion,
    DescribeVersion,
    EvaluationOutcome,
    GateDecision,
    MarkDelivered,
    ModelVersionRef,
    OverrideReleaseRequest,
    RegisteredVersion,
    RegisterVersion,
    ReleasedVersion,
    ReleaseRequest,
    ResolvedBaseModel,
    ResolvedModelVersion,
    VersionDescription,
)
from forge_contracts.state_machines import IllegalTransition
from forge_kit.auth import Principal
from forge_kit.db import Database
from forge_kit.errors import BadRequest, Conflict, ForgeError, NotFound
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_registry import schemas, service
from forge_registry.reports import ReportStore


@asynccontextmanager
async def _gate_errors() -> AsyncIterator[None]:
    """Refusals become non-retryable ApplicationErrors typed for the calling workflow."""
    try:
        yield
    except IllegalTransition as error:
        kind = (
            RELEASE_BLOCKED
            if error.transition == "release" and error.current == "evaluation_failed"
            else ILLEGAL_TRANSITION
        )
        raise ApplicationError(
            str(error), {"status": 409, "current_state": error.current}, type=kind, non_retryable=True
        ) from error
    except ForgeError as error:
        kinds: dict[type[ForgeError], str] = {
            NotFound: NOT_FOUND,
            BadRequest: INVALID_REQUEST,
            Conflict: CONFLICT,
        }
        kind = kinds.get(type(error), INVALID_REQUEST)
        raise ApplicationError(
            error.detail, {"status": error.status}, type=kind, non_retryable=True
        ) from error


class RegistryActivities:
    """The activities, bound to the service's database and report store."""

    def __init__(self, db: Database, reports: ReportStore, model_areas: Sequence[str]) -> None:
        self.db = db
        self.reports = reports
        self.model_areas = model_areas

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.register_model_version,
            self.record_evaluation,
            self.release_version,
            self.override_release,
            self.mark_delivered,
            self.resolve_base_model,
            self.resolve_model_version,
            self.describe_version,
        ]

    @activity.defn(name=REGISTER_MODEL_VERSION)
    async def register_model_version(self, request: RegisterVersion) -> RegisteredVersion:
        """Register a training job's model as a new version (the same job always gets the same version)."""
        body = schemas.VersionCreate(
            artifact_uri=request.artifact_uri,
            framework=request.framework,
            training_job_id=request.training_job_id,
            base_model_id=request.base_model_id,
            dataset_versions=list(request.dataset_versions),
            hyperparameters=request.hyperparameters,
            metrics=request.metrics,
        )
        async with _gate_errors():
            version, created = await service.register_version(
                self.db,
                Principal.of_service("registry", request.tenant_id, on_behalf_of=request.actor),
                request.project_id,
                body,
                self.model_areas,
            )
        return RegisteredVersion(
            version_id=version.id,
            project_id=version.project_id,
            version=version.version,
            state=version.state,
            created=created,
        )

    @activity.defn(name=RECORD_EVALUATION)
    async def record_evaluation(self, outcome: EvaluationOutcome) -> GateDecision:
        """Judge an evaluation against the gate (starting the evaluation first if needed) and move the
        version to evaluation_passed or evaluation_failed."""
        result = schemas.EvaluationResult(
            evaluation_id=outcome.evaluation_id,
            metrics=outcome.metrics,
            report=outcome.report,
            report_uri=outcome.report_uri,
            thresholds=outcome.thresholds,
        )
        async with _gate_errors():
            recorded = await service.record_evaluation(
                self.db,
                self.reports,
                Principal.of_service("registry", outcome.tenant_id, on_behalf_of=outcome.actor),
                None,
                outcome.version_id,
                result,
                start_if_needed=True,
            )
        evaluation = recorded.evaluation
        return GateDecision(
            version_id=recorded.version.id,
            evaluation_id=evaluation.id,
            passed=evaluation.passed,
            may_release=recorded.version.state == "evaluation_passed",
            failed_checks=list(evaluation.failed_checks),
            state=recorded.version.state,
            report_uri=evaluation.report_uri,
        )

    @activity.defn(name=RELEASE_VERSION)
    async def release_version(self, request: ReleaseRequest) -> ReleasedVersion:
        """Release a version whose evaluation passed; `ReleaseBlocked` when it failed."""
        caller = Principal.of_service("registry", request.tenant_id, on_behalf_of=request.actor)
        async with _gate_errors():
            current = await service.version(self.db, caller, request.version_id)
            if current.state not in {"released", "delivered"}:  # else: a retry after the release committed
                current = await service.release(
                    self.db,
                    caller,
                    None,
                    request.version_id,
                    schemas.Release(alias=request.alias, notes=request.notes),
                )
        return ReleasedVersion(
            version_id=current.id,
            version=current.version,
            state=current.state,
            artifact_uri=current.artifact_uri,
        )

    @activity.defn(name=OVERRIDE_RELEASE)
    async def override_release(self, request: OverrideReleaseRequest) -> ReleasedVersion:
        """Release a version whose evaluation failed, on an approver's word (audited like the API's)."""
        caller = Principal.of_service("registry", request.tenant_id, on_behalf_of=request.actor)
        async with _gate_errors():
            current = await service.version(self.db, caller, request.version_id)
            if current.state not in {"released", "delivered"}:  # else: a retry after the override committed
                current = await service.override_release(
                    self.db,
                    caller,
                    current.project_id,
                    request.version_id,
                    schemas.OverrideRelease(approved_by=request.approved_by, reason=request.reason),
                )
        return ReleasedVersion(
            version_id=current.id,
            version=current.version,
            state=current.state,
            artifact_uri=current.artifact_uri,
        )

    @activity.defn(name=MARK_DELIVERED)
    async def mark_delivered(self, request: MarkDelivered) -> DeliveredVersion:
        """Record a delivery of a released version; `IllegalTransition` (409) for any other state."""
        body = schemas.Delivered(delivery_order_id=request.delivery_order_id, bundle_uri=request.bundle_uri)
        async with _gate_errors():
            version = await service.mark_delivered(
                self.db,
                Principal.of_service("registry", request.tenant_id, on_behalf_of=request.actor),
                None,
                request.version_id,
                body,
            )
        return DeliveredVersion(
            version_id=version.id,
            state=version.state,
            delivery_order_id=body.delivery_order_id,
            bundle_uri=body.bundle_uri,
        )

    @activity.defn(name=RESOLVE_BASE_MODEL)
    async def resolve_base_model(self, ref: BaseModelRef) -> ResolvedBaseModel:
        """A base model of the tenant's hub and where its files are; another tenant's is `NotFound`."""
        async with _gate_errors():
            found = await service.base_model(
                self.db, Principal.of_service("registry", ref.tenant_id), ref.base_model_id
            )
        return ResolvedBaseModel(
            base_model_id=found.id,
            name=found.name,
            version=found.version,
            uri=found.uri,
            architecture=found.architecture,
            framework=found.framework,  # type: ignore[arg-type]
        )

    @activity.defn(name=RESOLVE_MODEL_VERSION)
    async def resolve_model_version(self, ref: ModelVersionRef) -> ResolvedModelVersion:
        """A model version of the tenant and where its weights are; another tenant's is `NotFound`."""
        async with _gate_errors():
            found = await service.version(
                self.db, Principal.of_service("registry", ref.tenant_id), ref.version_id
            )
        return ResolvedModelVersion(
            version_id=found.id,
            project_id=found.project_id,
            version=found.version,
            state=found.state,
            artifact_uri=found.artifact_uri,
            training_job_id=found.training_job_id,
            base_model_id=found.base_model_id,
        )

    @activity.defn(name=DESCRIBE_VERSION)
    async def describe_version(self, request: DescribeVersion) -> VersionDescription:
        """A version of the tenant, where its artifact is and whether it may be delivered (delivery asks
        before it packages); another tenant's version, or none, is `NotFound`."""
        caller = Principal.of_service("registry", request.tenant_id, on_behalf_of=request.actor)
        async with _gate_errors():
            facts = await service.describe_version(self.db, caller, request.version_id)
        version = facts.version
        return VersionDescription(
            version_id=version.id,
            project_id=version.project_id,
            project_name=facts.project.name,
            version=version.version,
            state=version.state,
            deliverable=facts.deliverable,
            artifact_uri=version.artifact_uri,
            framework=version.framework,  # type: ignore[arg-type]
            evaluation_id=version.evaluation_id,
            evaluation_passed=version.evaluation_passed,
            released_by_override=facts.released_by_override,
        )
