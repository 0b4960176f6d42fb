"""Use cases of the registry: one function per command, one transaction each, every version transition
through the model-version machine (the release gate) with its event in the outbox and a row in the audit
trail. Every read and write is scoped to the caller's tenant; another tenant's resource is not found."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from forge_contracts.activities.registry import Threshold, Thresholds
from forge_contracts.envelope import uuid7
from forge_contracts.events.registry import (
    ModelVersionArchived,
    ModelVersionDelivered,
    ModelVersionDeprecated,
    ModelVersionEvaluationAborted,
    ModelVersionEvaluationFailed,
    ModelVersionEvaluationPassed,
    ModelVersionEvaluationStarted,
    ModelVersionEvent,
    ModelVersionRegistered,
    ModelVersionReinstated,
    ModelVersionReleased,
    ModelVersionReleaseOverridden,
)
from forge_contracts.state_machines import MODEL_VERSION, IllegalTransition
from forge_kit import outbox
from forge_kit.auth import Forbidden, Principal
from forge_kit.db import Database
from forge_kit.errors import BadRequest, Conflict, NotFound
from forge_kit.objects import check_tenant_area
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_registry import domain, schemas
from forge_registry.reports import ReportStore
from forge_registry.tables import AuditEntry, Evaluation, HubModel, ModelProject, ModelVersion, now


@asynccontextmanager
async def _unique(db: Database, what: str) -> AsyncIterator[AsyncSession]:
    """A transaction whose unique-constraint violation (a concurrent duplicate) becomes a 409."""
    try:
        async with db.transaction() as session:
            yield session
    except IntegrityError as error:
        raise Conflict(f"{what} already exists") from error


# Model projects


async def create_project(db: Database, caller: Principal, body: schemas.ProjectCreate) -> ModelProject:
    async with _unique(db, f"model project {body.name!r}") as session:
        taken = await session.exec(
            select(ModelProject).where(
                ModelProject.tenant == caller.tenant_id, ModelProject.name == body.name
            )
        )
        if taken.first() is not None:
            raise Conflict(f"model project {body.name!r} already exists")
        project = ModelProject(
            id=uuid7(),
            tenant=caller.tenant_id,
            **body.model_dump(exclude={"gate"}),
            gate=_gate_json(body.gate),
        )
        session.add(project)
    return project


def _gate_json(gate: Thresholds) -> dict[str, Any]:
    return {name: bound.model_dump(exclude_none=True) for name, bound in gate.items()}


async def projects(db: Database, caller: Principal) -> list[ModelProject]:
    async with db.session() as session:
        found = await session.exec(
            select(ModelProject).where(ModelProject.tenant == caller.tenant_id).order_by(col(ModelProject.id))
        )
        return list(found.all())


async def _project(
    session: AsyncSession, caller: Principal, project_id: str, *, lock: bool = False
) -> ModelProject:
    query = select(ModelProject).where(ModelProject.id == project_id, ModelProject.tenant == caller.tenant_id)
    found = (await session.exec(query.with_for_update() if lock else query)).first()
    if found is None:
        raise NotFound(f"model project {project_id!r} does not exist")
    return found


async def project(
    db: Database, caller: Principal, project_id: str
) -> tuple[ModelProject, list[ModelVersion]]:
    """The project with its versions (MR-5: training, evaluation and delivery status together)."""
    async with db.session() as session:
        found = await _project(session, caller, project_id)
        listed = await session.exec(
            select(ModelVersion)
            .where(ModelVersion.project_id == project_id, ModelVersion.tenant == caller.tenant_id)
            .order_by(col(ModelVersion.version))
        )
        return found, list(listed.all())


async def set_gate(db: Database, caller: Principal, project_id: str, gate: Thresholds) -> ModelProject:
    async with db.transaction() as session:
        found = await _project(session, caller, project_id, lock=True)
        found.gate = _gate_json(gate)
        session.add(found)
    return found


# Base models (the hub)


async def register_base_model(
    db: Database, caller: Principal, body: schemas.BaseModelCreate, areas: Sequence[str]
) -> HubModel:
    """A base model of the caller's tenant, its files in one of the tenant's model areas."""
    check_tenant_area(body.uri, caller.tenant_id, areas)
    what = f"base model {body.name!r} version {body.version!r}"
    async with _unique(db, what) as session:
        taken = await session.exec(
            select(HubModel).where(
                HubModel.tenant == caller.tenant_id,
                HubModel.name == body.name,
                HubModel.version == body.version,
            )
        )
        if taken.first() is not None:
            raise Conflict(f"{what} already exists")
        model = HubModel(id=uuid7(), tenant=caller.tenant_id, **body.model_dump())
        session.add(model)
    return model


async def base_models(db: Database, caller: Principal, name: str | None = None) -> list[HubModel]:
    query = select(HubModel).where(HubModel.tenant == caller.tenant_id)
    if name:
        query = query.where(HubModel.name == name)
    async with db.session() as session:
        return list((await session.exec(query.order_by(col(HubModel.name), col(HubModel.id)))).all())


async def base_model(db: Database, caller: Principal, model_id: str) -> HubModel:
    async with db.session() as session:
        found: HubModel | None = (
            await session.exec(
                select(HubModel).where(HubModel.id == model_id, HubModel.tenant == caller.tenant_id)
            )
        ).first()
    if found is None:
        raise NotFound(f"base model {model_id!r} does not exist")
    return found


# Model versions: registration and reads


async def register_version(
    db: Database, caller: Principal, project_id: str, body: schemas.VersionCreate, areas: Sequence[str]
) -> tuple[ModelVersion, bool]:
    """A new version of the project (numbered 1, 2, 3, ...); the same training job registers once. Its
    artifact must be in one of the tenant's model areas (services read it with their own credentials).

    Returns the version and whether it was created now.
    """
    async with _unique(db, f"a version of training job {body.training_job_id!r}") as session:
        owner = await _project(session, caller, project_id, lock=True)  # serialises version numbers
        check_tenant_area(body.artifact_uri, caller.tenant_id, areas, what="artifact_uri")
        if body.training_job_id is not None:
            existing = await _by_training_job(session, caller, body.training_job_id)
            if existing is not None:
                if existing.project_id != project_id:
                    raise Conflict(
                        f"training job {body.training_job_id!r} is registered as a version of another "
                        f"model project ({existing.project_id})"
                    )
                return existing, False
        if body.base_model_id is not None:
            await _check_base_model(session, caller, body.base_model_id)
        latest = (
            await session.exec(
                select(func.max(ModelVersion.version)).where(ModelVersion.project_id == project_id)
            )
        ).one()
        version = ModelVersion(
            id=uuid7(),
            tenant=caller.tenant_id,
            project_id=project_id,
            version=(latest or 0) + 1,
            state=MODEL_VERSION.initial,
            sequence=1,
            artifact_uri=body.artifact_uri,
            framework=body.framework,
            source="training" if body.training_job_id else "import",
            training_job_id=body.training_job_id,
            base_model_id=body.base_model_id,
            dataset_versions=[ref.model_dump() for ref in body.dataset_versions],
            hyperparameters=body.hyperparameters,
            metrics=dict(body.metrics),
            tags=domain.merged_tags([], list(body.tags)),
        )
        session.add(version)
        await session.flush()
        _audit(session, caller, version, "register", None)
        event = ModelVersionRegistered(
            **_identity(caller, owner, version),
            artifact_uri=version.artifact_uri,
            framework=body.framework,
            source="training" if body.training_job_id else "import",
            training_job_id=version.training_job_id,
            base_model_version_id=version.base_model_id,
            dataset_version_ids=[ref.id for ref in body.dataset_versions],
            metrics=dict(body.metrics),
        )
        await outbox.publish(session, event.to_envelope(sequence=version.sequence))
    return version, True


async def _by_training_job(session: AsyncSession, caller: Principal, job_id: str) -> ModelVersion | None:
    query = select(ModelVersion).where(
        ModelVersion.tenant == caller.tenant_id, ModelVersion.training_job_id == job_id
    )
    return (await session.exec(query)).first()


async def _check_base_model(session: AsyncSession, caller: Principal, model_id: str) -> None:
    query = select(HubModel.id).where(HubModel.id == model_id, HubModel.tenant == caller.tenant_id)
    if (await session.exec(query)).first() is None:
        raise BadRequest(f"base_model_id: base model {model_id!r} does not exist")


async def _version(
    session: AsyncSession,
    caller: Principal,
    version_id: str,
    project_id: str | None = None,
    *,
    lock: bool = False,
) -> ModelVersion:
    query = select(ModelVersion).where(ModelVersion.id == version_id, ModelVersion.tenant == caller.tenant_id)
    if project_id is not None:
        query = query.where(ModelVersion.project_id == project_id)
    found = (await session.exec(query.with_for_update() if lock else query)).first()
    if found is None:
        raise NotFound(f"model version {version_id!r} does not exist")
    return found


async def version(
    db: Database, caller: Principal, version_id: str, project_id: str | None = None
) -> ModelVersion:
    async with db.session() as session:
        return await _version(session, caller, version_id, project_id)


RELEASED_STATES = frozenset({"released", "delivered", "deprecated"})
"""States a version is in once released (until archived)."""


@dataclass(frozen=True)
class VersionFacts:
    """A version with its project, and whether it may be delivered now (for the delivery service)."""

    version: ModelVersion
    project: ModelProject

    @property
    def deliverable(self) -> bool:
        """Released (through the gate or an audited override): the one state `mark_delivered` leaves."""
        return MODEL_VERSION.can(self.version.state, "mark_delivered")

    @property
    def released_by_override(self) -> bool:
        return self.version.evaluation_passed is False and self.version.state in RELEASED_STATES


async def describe_version(db: Database, caller: Principal, version_id: str) -> VersionFacts:
    """The tenant's version and its project; another tenant's, or none, is not found."""
    async with db.session() as session:
        found = await _version(session, caller, version_id)
        owner = await _project(session, caller, found.project_id)
    return VersionFacts(found, owner)


async def search_versions(
    db: Database,
    caller: Principal,
    *,
    project_id: str | None = None,
    tag: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[ModelVersion]:
    """Versions of the tenant, filtered by project, tag (or alias) and state (MR-4)."""
    if state is not None and state not in MODEL_VERSION.states:
        raise BadRequest(f"state: no state {state!r}; states: {', '.join(sorted(MODEL_VERSION.states))}")
    query = select(ModelVersion).where(ModelVersion.tenant == caller.tenant_id)
    if project_id is not None:
        query = query.where(ModelVersion.project_id == project_id)
    if tag is not None:
        query = query.where(col(ModelVersion.tags).contains([tag]))
    if state is not None:
        query = query.where(ModelVersion.state == state)
    query = query.order_by(col(ModelVersion.project_id), col(ModelVersion.version)).limit(limit)
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def evaluations(db: Database, caller: Principal, project_id: str, version_id: str) -> list[Evaluation]:
    async with db.session() as session:
        await _version(session, caller, version_id, project_id)
        query = (
            select(Evaluation)
            .where(Evaluation.version_id == version_id, Evaluation.tenant == caller.tenant_id)
            .order_by(col(Evaluation.recorded_at))
        )
        return list((await session.exec(query)).all())


async def audit(db: Database, caller: Principal, project_id: str, version_id: str) -> list[AuditEntry]:
    async with db.session() as session:
        await _version(session, caller, version_id, project_id)
        query = (
            select(AuditEntry)
            .where(AuditEntry.version_id == version_id, AuditEntry.tenant == caller.tenant_id)
            .order_by(col(AuditEntry.at), col(AuditEntry.id))
        )
        return list((await session.exec(query)).all())


async def set_tags(
    db: Database, caller: Principal, project_id: str, version_id: str, tags: list[str]
) -> ModelVersion:
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        before = list(found.tags)
        found.tags = domain.merged_tags([], tags)
        found.updated_at = now()
        session.add(found)
        _audit(
            session, caller, found, "set_tags", found.state, details={"before": before, "after": found.tags}
        )
    return found


async def compare(db: Database, caller: Principal, project_id: str, a: str, b: str) -> schemas.Comparison:
    """Two versions of one project side by side: metrics, evaluation metrics, parameters, datasets."""
    async with db.session() as session:
        await _project(session, caller, project_id)
        left = await _version_by_ref(session, caller, project_id, a)
        right = await _version_by_ref(session, caller, project_id, b)
        left_eval = await _evaluation_metrics(session, left)
        right_eval = await _evaluation_metrics(session, right)
    left_data = {str(ref["id"]) for ref in left.dataset_versions}
    right_data = {str(ref["id"]) for ref in right.dataset_versions}
    return schemas.Comparison(
        a=schemas.VersionRef.model_validate(left, from_attributes=True),
        b=schemas.VersionRef.model_validate(right, from_attributes=True),
        metrics=domain.compare_numbers(left.metrics, right.metrics),
        evaluation_metrics=domain.compare_numbers(left_eval, right_eval),
        hyperparameters=domain.compare_values(left.hyperparameters, right.hyperparameters),
        datasets={
            "only_a": sorted(left_data - right_data),
            "only_b": sorted(right_data - left_data),
            "common": sorted(left_data & right_data),
        },
    )


async def _version_by_ref(
    session: AsyncSession, caller: Principal, project_id: str, ref: str
) -> ModelVersion:
    """A version by id, or by its number within the project (ASCII digits, within the column's range)."""
    if re.fullmatch(r"[0-9]{1,10}", ref) and int(ref) <= 2**31 - 1:
        query = select(ModelVersion).where(
            ModelVersion.project_id == project_id,
            ModelVersion.tenant == caller.tenant_id,
            ModelVersion.version == int(ref),
        )
        found = (await session.exec(query)).first()
        if found is None:
            raise NotFound(f"model project {project_id!r} has no version {ref}")
        return found
    return await _version(session, caller, ref, project_id)


async def _evaluation_metrics(session: AsyncSession, version: ModelVersion) -> dict[str, float]:
    if version.evaluation_id is None:
        return {}
    found = await session.get(Evaluation, version.evaluation_id)
    return dict(found.metrics) if found is not None else {}


# Model versions: transitions of the release gate


def _identity(caller: Principal, owner: ModelProject, version: ModelVersion) -> dict[str, Any]:
    return {
        "tenant_id": caller.tenant_id,
        "occurred_at": datetime.now(UTC),
        "actor": caller.actor,
        "version_id": version.id,
        "model_id": owner.id,
        "model_name": owner.name,
        "version": version.version,
    }


def _audit(
    session: AsyncSession,
    caller: Principal,
    version: ModelVersion,
    action: str,
    from_state: str | None,
    *,
    approved_by: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            id=uuid7(),
            tenant=caller.tenant_id,
            version_id=version.id,
            action=action,
            from_state=from_state,
            to_state=version.state,
            actor=caller.actor,
            approved_by=approved_by,
            reason=reason,
            details=dict(details or {}),
        )
    )


async def _move(
    session: AsyncSession,
    caller: Principal,
    version: ModelVersion,
    name: str,
    payload: type[ModelVersionEvent],
    *,
    fields: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    **data: Any,
) -> None:
    """Apply transition `name` (or raise IllegalTransition), audit it and publish its one event (`data`
    completes the event's payload; its approver and reason, or release notes, go to the audit row)."""
    step = MODEL_VERSION.transition(version.state, name, fields=fields)
    owner = await _project(session, caller, version.project_id)
    event = payload(**_identity(caller, owner, version), from_state=version.state, **data)
    if event.event_type != step.event_type:  # a programming error, never a user's
        raise RuntimeError(f"{name} emits {step.event_type}, not {event.event_type}")
    source = version.state
    version.state = step.target
    version.sequence += 1
    version.updated_at = now()
    session.add(version)
    _audit(
        session,
        caller,
        version,
        name,
        source,
        approved_by=data.get("approved_by"),
        reason=data.get("reason") or data.get("notes"),
        details=details,
    )
    await outbox.publish(session, event.to_envelope(sequence=version.sequence))


async def start_evaluation(
    db: Database, caller: Principal, project_id: str | None, version_id: str, evaluation_id: str
) -> ModelVersion:
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        await _start_evaluation(session, caller, found, evaluation_id)
    return found


async def _start_evaluation(
    session: AsyncSession, caller: Principal, version: ModelVersion, evaluation_id: str
) -> None:
    if await session.get(Evaluation, evaluation_id) is not None:
        raise Conflict(f"evaluation {evaluation_id!r} was recorded already; start a new evaluation")
    await _move(
        session,
        caller,
        version,
        "start_evaluation",
        ModelVersionEvaluationStarted,
        evaluation_id=evaluation_id,
        details={"evaluation_id": evaluation_id},
    )
    version.evaluation_id = evaluation_id
    version.evaluation_passed = None


async def abort_evaluation(
    db: Database, caller: Principal, project_id: str, version_id: str, reason: str
) -> ModelVersion:
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        await _move(
            session,
            caller,
            found,
            "abort_evaluation",
            ModelVersionEvaluationAborted,
            reason=reason,
            evaluation_id=found.evaluation_id,
            details={"evaluation_id": found.evaluation_id},
        )
    return found


@dataclass(frozen=True)
class RecordedEvaluation:
    version: ModelVersion
    evaluation: Evaluation
    created: bool


async def record_evaluation(
    db: Database,
    reports: ReportStore,
    caller: Principal,
    project_id: str | None,
    version_id: str,
    result: schemas.EvaluationResult,
    *,
    start_if_needed: bool = False,
) -> RecordedEvaluation:
    """Judge an evaluation's metrics against the gate and move the version to evaluation_passed/failed.

    The verdict is the registry's: the project's gate, plus any thresholds sent with the result (they can
    only add checks, never loosen the project's); with neither, a bad request (a gate that checks nothing
    would release anything). `evaluation_id` defaults to the version's current evaluation.

    One evaluation has one result, however many callers post it at once: the version's row is locked
    while it is judged and stored, so the first stores it; a repeat with the same metrics, report (and
    report_uri, when given) returns that stored result, a different one is a 409. `start_if_needed` (for
    workflows) starts the evaluation first when the version is not being evaluated yet.
    """
    what = f"evaluation {result.evaluation_id!r}" if result.evaluation_id else "the evaluation"
    async with _unique(db, what) as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        owner = await _project(session, caller, found.project_id)
        evaluation_id = result.evaluation_id or found.evaluation_id
        if evaluation_id is not None and (done := await session.get(Evaluation, evaluation_id)) is not None:
            return _recorded_already(found, done, caller, result)
        if evaluation_id is None:
            raise IllegalTransition(
                MODEL_VERSION.name,
                found.state,
                "pass_evaluation",
                MODEL_VERSION.allowed(found.state),
                "no evaluation is in progress: start one, or give evaluation_id",
            )
        start = start_if_needed and found.state != "evaluating"
        # Refusals first (409, 400), before writing any report.
        MODEL_VERSION.transition(found.state, "start_evaluation" if start else "pass_evaluation")
        if not start and found.evaluation_id != evaluation_id:
            raise Conflict(
                f"model version {found.id!r} is being evaluated by evaluation {found.evaluation_id!r}, "
                f"not {evaluation_id!r}"
            )
        gate = effective_gate(owner.gate, result.thresholds)
        if start:
            await _start_evaluation(session, caller, found, evaluation_id)
        verdict = domain.judge(result.metrics, gate)
        gate_json = _gate_json(gate)
        # Written under the version's lock: a concurrent post of another result for this evaluation waits,
        # then finds this one stored, and never overwrites the report it points to.
        report_uri = result.report_uri or await reports.put(
            reports.key(caller.tenant_id, found.project_id, found.id, evaluation_id),
            {
                "evaluation_id": evaluation_id,
                "version_id": found.id,
                "model_id": found.project_id,
                "version": found.version,
                "passed": verdict.passed,
                "metrics": dict(result.metrics),
                "thresholds": gate_json,
                "checks": verdict.checks,
                "failed_checks": verdict.failed_checks,
                "report": result.report,
            },
        )
        common: dict[str, Any] = {
            "evaluation_id": evaluation_id,
            "metrics": dict(result.metrics),
            "report_uri": report_uri,
            "details": {"evaluation_id": evaluation_id, "failed_checks": verdict.failed_checks},
        }
        if verdict.passed:
            await _move(session, caller, found, verdict.transition, ModelVersionEvaluationPassed, **common)
        else:
            await _move(
                session,
                caller,
                found,
                verdict.transition,
                ModelVersionEvaluationFailed,
                failed_checks=verdict.failed_checks,
                **common,
            )
        found.evaluation_passed = verdict.passed
        evaluation = Evaluation(
            id=evaluation_id,
            tenant=caller.tenant_id,
            version_id=found.id,
            passed=verdict.passed,
            metrics=dict(result.metrics),
            thresholds=gate_json,
            failed_checks=verdict.failed_checks,
            checks=verdict.checks,
            report=result.report,
            report_uri=report_uri,
        )
        session.add(evaluation)
    return RecordedEvaluation(found, evaluation, created=True)


def effective_gate(project_gate: Mapping[str, Any], given: Mapping[str, Threshold] | None) -> Thresholds:
    """The thresholds an evaluation is judged by: the project's gate, tightened by those `given` with the
    result (a higher `min`, a lower `max`, another metric), never loosened. Neither: a bad request."""
    gate: dict[str, Threshold] = {name: Threshold.model_validate(b) for name, b in project_gate.items()}
    for name, bound in (given or {}).items():
        mine = gate.get(name)
        if mine is None:
            gate[name] = bound
            continue
        low = [v for v in (mine.min, bound.min) if v is not None]
        high = [v for v in (mine.max, bound.max) if v is not None]
        # Bounds that cross can never pass: kept as they are (built unchecked), the metric fails a check.
        gate[name] = Threshold.model_construct(min=max(low) if low else None, max=min(high) if high else None)
    if not gate:
        raise BadRequest(
            "thresholds: none given and the model project has no gate configured; a gate must check something"
        )
    return gate


def _recorded_already(
    version: ModelVersion, done: Evaluation, caller: Principal, result: schemas.EvaluationResult
) -> RecordedEvaluation:
    """The stored result of an evaluation, for a repeat of it; a different result for it is a 409."""
    if done.version_id != version.id or done.tenant != caller.tenant_id:
        raise Conflict(f"evaluation {done.id!r} was recorded for another model version")
    different = [
        name
        for name, same in (
            ("metrics", dict(done.metrics) == dict(result.metrics)),
            ("report", dict(done.report) == dict(result.report)),
            ("report_uri", result.report_uri is None or result.report_uri == done.report_uri),
        )
        if not same
    ]
    if different:
        raise Conflict(
            f"evaluation {done.id!r} was recorded already with other {' and '.join(different)}; "
            "one evaluation has one result (start a new evaluation to judge new results)"
        )
    return RecordedEvaluation(version, done, created=False)


async def release(
    db: Database, caller: Principal, project_id: str | None, version_id: str, body: schemas.Release
) -> ModelVersion:
    """Release a version whose evaluation passed; `alias` moves to it from the project's other versions."""
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        await _move(
            session,
            caller,
            found,
            "release",
            ModelVersionReleased,
            evaluation_id=found.evaluation_id,
            alias=body.alias,
            notes=body.notes,
            details={"evaluation_id": found.evaluation_id, "alias": body.alias},
        )
        await _take_alias(session, found, body.alias)
    return found


async def override_release(
    db: Database, caller: Principal, project_id: str, version_id: str, body: schemas.OverrideRelease
) -> ModelVersion:
    """Release a version whose evaluation failed: needs an approver and a reason, both audited."""
    async with db.transaction() as session:
        # The approver is who signed in; a service (the chain) passes on the user who approved there.
        if not caller.is_service and body.approved_by not in (None, caller.actor):
            raise Forbidden(f"{caller.actor} may not approve in the name of {body.approved_by!r}")
        approver = body.approved_by if caller.is_service else caller.actor
        found = await _version(session, caller, version_id, project_id, lock=True)
        fields = {"approved_by": approver, "reason": body.reason}
        MODEL_VERSION.transition(found.state, "override_release", fields=fields)  # before reading more
        failed = await session.get(Evaluation, found.evaluation_id) if found.evaluation_id else None
        failed_checks = list(failed.failed_checks) if failed is not None else []
        await _move(
            session,
            caller,
            found,
            "override_release",
            ModelVersionReleaseOverridden,
            fields=fields,
            evaluation_id=found.evaluation_id,
            approved_by=(approver or "").strip(),
            reason=(body.reason or "").strip(),
            failed_checks=failed_checks,
            alias=body.alias,
            details={
                "evaluation_id": found.evaluation_id,
                "failed_checks": failed_checks,
                "alias": body.alias,
            },
        )
        await _take_alias(session, found, body.alias)
    return found


async def _take_alias(session: AsyncSession, version: ModelVersion, alias: str | None) -> None:
    """An alias names one version of a project: add it here, remove it from the others."""
    if alias is None:
        return
    # Aliases of one project move one at a time: concurrent releases naming the same alias queue on the
    # project's row, and each sees the one before it committed (else both would keep the alias).
    await session.exec(  # type: ignore[call-overload]
        text("SELECT id FROM model_project WHERE id = :project FOR UPDATE"),
        params={"project": version.project_id},
    )
    await session.exec(  # type: ignore[call-overload]
        text(
            "UPDATE model_version SET tags = tags - CAST(:alias AS text), updated_at = now() "
            "WHERE project_id = :project AND id <> :id AND tags ? :alias"
        ),
        params={"alias": alias, "project": version.project_id, "id": version.id},
    )
    version.tags = domain.merged_tags(list(version.tags), [alias])
    session.add(version)


async def mark_delivered(
    db: Database, caller: Principal, project_id: str | None, version_id: str, body: schemas.Delivered
) -> ModelVersion:
    """Record a delivery; only a released version can be delivered (the same order again is a no-op)."""
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        if found.state == "delivered" and found.delivery_order_id == body.delivery_order_id:
            return found
        await _move(
            session,
            caller,
            found,
            "mark_delivered",
            ModelVersionDelivered,
            delivery_order_id=body.delivery_order_id,
            bundle_uri=body.bundle_uri,
            details={"delivery_order_id": body.delivery_order_id, "bundle_uri": body.bundle_uri},
        )
        found.delivery_order_id = body.delivery_order_id
        found.bundle_uri = body.bundle_uri
    return found


async def deprecate(
    db: Database, caller: Principal, project_id: str, version_id: str, body: schemas.Deprecate
) -> ModelVersion:
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        if body.replaced_by_version_id is not None:
            await _sibling(session, caller, found, body.replaced_by_version_id, "replaced_by_version_id")
        await _move(
            session,
            caller,
            found,
            "deprecate",
            ModelVersionDeprecated,
            reason=body.reason,
            replaced_by_version_id=body.replaced_by_version_id,
            details={"replaced_by_version_id": body.replaced_by_version_id},
        )
    return found


async def reinstate(
    db: Database, caller: Principal, project_id: str, version_id: str, body: schemas.Reinstate
) -> ModelVersion:
    """Roll back to a deprecated version: it is released again (MR-2)."""
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        if body.rolled_back_from_version_id is not None:
            await _sibling(
                session, caller, found, body.rolled_back_from_version_id, "rolled_back_from_version_id"
            )
        await _move(
            session,
            caller,
            found,
            "reinstate",
            ModelVersionReinstated,
            reason=body.reason,
            rolled_back_from_version_id=body.rolled_back_from_version_id,
            details={"rolled_back_from_version_id": body.rolled_back_from_version_id},
        )
    return found


async def archive(
    db: Database, caller: Principal, project_id: str, version_id: str, body: schemas.Archive
) -> ModelVersion:
    async with db.transaction() as session:
        found = await _version(session, caller, version_id, project_id, lock=True)
        await _move(session, caller, found, "archive", ModelVersionArchived, reason=body.reason)
    return found


async def _sibling(
    session: AsyncSession, caller: Principal, version: ModelVersion, other_id: str, field: str
) -> None:
    query = select(ModelVersion.id).where(
        ModelVersion.id == other_id,
        ModelVersion.tenant == caller.tenant_id,
        ModelVersion.project_id == version.project_id,
    )
    if other_id == version.id or (await session.exec(query)).first() is None:
        raise BadRequest(f"{field}: {other_id!r} is not another version of this model project")
