"""Use cases of the training service: one function per command, one transaction each, every state
change through the job's state machine with exactly one event in the outbox; and the queries."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from forge_contracts.activities.dataset import ResolvedVersion
from forge_contracts.activities.scheduler import WorkerResources
from forge_contracts.activities.training import (
    EVALUATION_WORKFLOW,
    RESOLVE_INPUTS_WORKFLOW,
    WORKFLOW,
    EvaluationRequest,
    InputsToResolve,
    JobScheduling,
    ResolvedInputs,
    TrainingJobInput,
    evaluation_workflow_id,
    resolve_inputs_workflow_id,
    workflow_id,
)
from forge_contracts.envelope import uuid7
from forge_contracts.events.base import ResourceRequest
from forge_contracts.events.training import (
    EvaluationJobCancelled,
    EvaluationJobCreated,
    EvaluationJobEvent,
    EvaluationJobFailed,
    EvaluationJobQueued,
    EvaluationJobStarted,
    EvaluationJobSucceeded,
    TrainingJobCancelled,
    TrainingJobCreated,
    TrainingJobEvent,
    TrainingJobFailed,
    TrainingJobQueued,
    TrainingJobStarted,
    TrainingJobSucceeded,
)
from forge_kit import outbox
from forge_kit.db import Database
from forge_kit.errors import Conflict, ForgeError, NotFound, Unavailable, Unprocessable
from forge_kit.observability import logger
from forge_kit.runtime import ServiceRuntime
from pydantic import ValidationError
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError, RPCStatusCode

from forge_training.domain import (
    BACKEND,
    EVALUATION_MACHINE,
    EVALUATION_METRICS,
    LOCAL_QUEUE,
    MACHINE,
    NOT_JUDGED,
    judge,
)
from forge_training.schemas import (
    CreateEvaluationJob,
    CreateTrainingJob,
    DatasetFiles,
    EvaluationSettings,
    TrainingSpec,
)
from forge_training.settings import TrainingSettings
from forge_training.storage import ObjectStore
from forge_training.tables import (
    EvaluationJob,
    EvaluationRecord,
    TrainingCheckpoint,
    TrainingJob,
    TrainingLog,
    TrainingMetric,
)

log = logger(component="training.service")


@dataclass(frozen=True)
class Deps:
    """What the use cases need: the runtime (database, Temporal), settings and object storage."""

    runtime: ServiceRuntime
    settings: TrainingSettings
    store: ObjectStore

    @property
    def db(self) -> Database:
        return self.runtime.db


def _now() -> datetime:
    return datetime.now(UTC)


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInputs:
    """Where a training job's files are: resolved from the Forge ids it names (or by the chain, which
    resolved its dataset version itself)."""

    base_model_uri: str
    dataset_version_id: str
    bucket: str
    train_key: str
    validation_key: str | None = None
    base_model_id: str | None = None
    dataset_id: str | None = None


async def resolve(
    deps: Deps,
    tenant: str,
    *,
    dataset_id: str | None = None,
    dataset_version_id: str | None = None,
    base_model_id: str | None = None,
    model_version_id: str | None = None,
) -> ResolvedInputs:
    """The Forge resources a request names, resolved by their owners' activities (`ResolveInputsWorkflow`),
    which check the tenant: another tenant's (or an unknown) resource is a 404, one that cannot be used
    yet (a draft dataset version) a 409."""
    client = deps.runtime.temporal
    if client is None:
        raise Unavailable("the workflow engine is not connected")
    request = InputsToResolve(
        tenant_id=tenant,
        dataset_id=dataset_id,
        dataset_version_id=dataset_version_id,
        base_model_id=base_model_id,
        model_version_id=model_version_id,
        dataset_task_queue=deps.settings.dataset_task_queue,
        registry_task_queue=deps.settings.registry_task_queue,
    )
    try:
        return await client.execute_workflow(
            RESOLVE_INPUTS_WORKFLOW,
            request,
            id=resolve_inputs_workflow_id(uuid7()),
            task_queue=deps.runtime.task_queue,
            result_type=ResolvedInputs,
            execution_timeout=timedelta(seconds=deps.settings.resolve_timeout_s),
        )
    except WorkflowFailureError as failure:
        raise _refusal(failure) from failure
    except RPCError as error:
        raise Unavailable(f"the workflow engine could not resolve the request's inputs: {error}") from error


def _refusal(failure: WorkflowFailureError) -> ForgeError:
    """What an owner's refusal means for the caller (its message, with the owner's status)."""
    cause: BaseException | None = failure.cause
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        message = cause.message
        if cause.type == "NotFound":
            return NotFound(message)
        if cause.type in ("Conflict", "IllegalTransition"):
            return Conflict(message)
        return Unprocessable(message)
    return Unavailable(f"the services owning the request's inputs did not answer: {cause or failure}")


def _file_key(version: ResolvedVersion, name: str, field: str) -> str:
    for file in version.files:
        if file.name == name:
            return file.object_key
    names = ", ".join(sorted(f.name for f in version.files)) or "none"
    raise Unprocessable(
        f"{field}: dataset version {version.version_id} has no file {name!r} (it has {names})"
    )


def training_inputs(resolved: ResolvedInputs, files: DatasetFiles) -> JobInputs:
    """Where the job's files are, from the resolved dataset version and base model."""
    version, base = resolved.dataset, resolved.base_model
    assert version is not None and base is not None
    validation = files.validation_file
    return JobInputs(
        base_model_uri=base.uri,
        base_model_id=base.base_model_id,
        dataset_id=version.dataset_id,
        dataset_version_id=version.version_id,
        bucket=version.bucket,
        train_key=_file_key(version, files.train_file, "dataset.train_file"),
        validation_key=None
        if validation is None
        else _file_key(version, validation, "dataset.validation_file"),
    )


def new_job(tenant: str, user: str | None, body: TrainingSpec, inputs: JobInputs) -> TrainingJob:
    return TrainingJob(
        id=uuid7(),
        tenant=tenant,
        project_id=body.project_id,
        name=body.name,
        created_by=user,
        priority=body.priority,
        base_model_uri=inputs.base_model_uri,
        base_model_id=inputs.base_model_id,
        dataset_id=inputs.dataset_id,
        dataset_version_id=inputs.dataset_version_id,
        dataset_bucket=inputs.bucket,
        train_key=inputs.train_key,
        validation_key=inputs.validation_key,
        data_format=body.data_format,
        hyperparameters=body.hyperparameters.model_dump(),
        lora=body.lora.model_dump(),
        resources=body.resources.model_dump(),
        allocation_request_id=uuid7(),
        scheduler_project_id=body.scheduler_project_id,
        queue=LOCAL_QUEUE,
        sequence=1,
    )


async def record_job(session: AsyncSession, job: TrainingJob, user: str | None) -> None:
    session.add(job)
    await _publish(
        session,
        job,
        TrainingJobCreated(
            **_common(job, actor=user),
            name=job.name,
            dataset_version_ids=[job.dataset_version_id],
            base_model_version_id=job.base_model_version_id,
            base_model_id=job.base_model_id,
            method="lora",
            hyperparameters={**job.hyperparameters, "lora": job.lora},
            resources=ResourceRequest.model_validate(job.resources),
            priority=job.priority,
        ),
    )


async def create_job(
    db: Database, tenant: str, user: str | None, body: TrainingSpec, inputs: JobInputs
) -> TrainingJob:
    """Record a new job (pending) and its `created` event, reading `inputs` (no workflow: the chain runs
    it as its child)."""
    job = new_job(tenant, user, body, inputs)
    async with db.transaction() as session:
        await record_job(session, job, user)
    return job


async def submit_job(deps: Deps, tenant: str, user: str | None, body: CreateTrainingJob) -> TrainingJob:
    """Check what the job asks the scheduler for (422), resolve the dataset version and base model it
    names (404 for another tenant's), then record the job and start its workflow in one transaction: a
    workflow that cannot be started leaves nothing behind (503)."""
    scheduling = scheduling_for(body.scheduler_project_id, body.resources, body.priority)
    resolved = await resolve(
        deps,
        tenant,
        dataset_id=body.dataset.dataset_id,
        dataset_version_id=body.dataset.version_id,
        base_model_id=body.base_model.id,
    )
    job = new_job(tenant, user, body, training_inputs(resolved, body.dataset))
    settings = deps.settings
    start = TrainingJobInput(
        tenant_id=tenant,
        job_id=job.id,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        run_attempts=settings.run_attempts,
        scheduling=scheduling,
    )

    async def record(session: AsyncSession) -> None:
        await record_job(session, job, user)

    await record_and_start(deps, record, WORKFLOW, start, workflow_id(job.id), what="job")
    return job


async def record_and_start(
    deps: Deps,
    record: Callable[[AsyncSession], Awaitable[None]],
    workflow: str,
    argument: Any,
    workflow_id_: str,
    *,
    what: str,
) -> None:
    """Write what `record` writes and start the workflow that runs it, as one: the transaction commits
    only once the workflow started (its first activities wait, retrying, for the commit), and a workflow
    that started while the transaction failed is terminated, so there is never a job without a workflow
    nor a workflow without its job."""
    client = deps.runtime.temporal
    if client is None:
        raise Unavailable(f"the workflow engine is not connected; the {what} was not created")
    attempted = False
    try:
        async with deps.db.transaction() as session:
            await record(session)
            await session.flush()  # constraint errors surface before anything starts
            attempted = True
            try:
                await client.start_workflow(
                    workflow, argument, id=workflow_id_, task_queue=deps.runtime.task_queue
                )
            except WorkflowAlreadyStartedError as error:  # not ours: leave that workflow alone
                attempted = False
                raise Unavailable(
                    f"the workflow engine could not start the {what} ({error}); nothing was created"
                ) from error
            except Exception as error:
                log.exception("training.workflow_start_failed", workflow_id=workflow_id_, error=repr(error))
                raise Unavailable(
                    f"the workflow engine could not start the {what}; nothing was created"
                ) from error
    except BaseException:
        if attempted:
            await _forget(client, workflow_id_, f"the {what} could not be recorded")
        raise


async def _forget(client: Client, workflow_id_: str, reason: str) -> None:
    """Terminate a workflow whose job was not recorded (it may have started although the start failed)."""
    try:
        await client.get_workflow_handle(workflow_id_).terminate(reason=reason)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            log.warning("training.workflow_not_terminated", workflow_id=workflow_id_, error=repr(error))


async def request_cancel(
    deps: Deps, tenant: str, job_id: str, *, actor: str | None, reason: str | None
) -> TrainingJob:
    """Ask the job's workflow to stop: it kills the runtime and ends the job `cancelled`. A job whose
    workflow is gone is cancelled here directly. 409 when the job already ended."""
    async with deps.db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        MACHINE.transition(job.state, "cancel")  # 409 now rather than a silent no-op later
        job.cancel_requested_by, job.cancel_reason = actor, reason
        session.add(job)
    client = deps.runtime.temporal
    try:
        if client is None:
            raise RuntimeError("the Temporal client is not connected")
        await client.get_workflow_handle(workflow_id(job_id)).cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Unavailable(f"the workflow engine could not cancel the job: {error}") from error
        return await cancel(deps.db, tenant, job_id) or job  # no running workflow: nothing to stop
    return job


def scheduling_for(project_id: str | None, resources: ResourceRequest, priority: int) -> JobScheduling | None:
    """What a job asks the scheduler for (None without a scheduler project); a request the scheduler's
    contract cannot carry is a 422 now, never a job that fails to start later."""
    if project_id is None:
        return None
    accelerators = {resources.accelerator: resources.accelerator_count} if resources.accelerator else {}
    try:
        return JobScheduling(
            project_id=project_id,
            per_worker=WorkerResources(
                cpu_millis=max(1, math.ceil(resources.cpu_cores * 1000)),
                memory_bytes=resources.memory_bytes,
                accelerators=accelerators,
            ),
            gang_size=resources.replicas,
            priority=priority,
        )
    except ValidationError as invalid:
        problems = "; ".join(issue["msg"] for issue in invalid.errors())
        raise Unprocessable(f"resources: the scheduler cannot take this request: {problems}") from None


def scheduling_of(job: TrainingJob) -> JobScheduling | None:
    """What a recorded job asks the scheduler for."""
    return scheduling_for(
        job.scheduler_project_id, ResourceRequest.model_validate(job.resources), job.priority
    )


async def enqueue(
    db: Database, tenant: str, job_id: str, *, allocation_id: str | None = None, queue: str | None = None
) -> TrainingJob:
    """pending -> queued, waiting on `allocation_id` in the scheduler's `queue` (when scheduled); a job
    already past pending is returned unchanged (activity retries)."""
    async with db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        if job.state != "pending":
            return job
        _move(job, "enqueue")
        if allocation_id is not None:
            job.allocation_id, job.queue = allocation_id, queue or job.queue
        await _publish(
            session,
            job,
            TrainingJobQueued(
                **_common(job), from_state="pending", allocation_id=_allocation_of(job), queue=job.queue
            ),
        )
    return job


def _allocation_of(job: TrainingJob) -> str:
    """The allocation the events name: the scheduler's, or the id minted for an unscheduled job."""
    return job.allocation_id or job.allocation_request_id


@dataclass(frozen=True)
class RunStart:
    """What a run attempt starts from."""

    job: TrainingJob
    checkpoint: TrainingCheckpoint | None
    next_log_seq: int


async def begin_run(db: Database, tenant: str, job_id: str) -> RunStart:
    """queued -> running (one `started` event), or, when the job is already running (a retry after a
    lost worker), count the attempt and resume from its newest uploaded checkpoint: metric values of
    steps after that checkpoint are dropped, since those steps run again."""
    async with db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        if MACHINE.is_terminal(job.state):
            return RunStart(job, None, 0)
        checkpoint = (
            await session.exec(
                select(TrainingCheckpoint)
                .where(TrainingCheckpoint.job_id == job.id)
                .order_by(col(TrainingCheckpoint.step).desc())
                .limit(1)
            )
        ).first()
        job.attempt += 1
        if job.state == "queued":
            _move(job, "start")
            job.started_at = _now()
            await _publish(
                session,
                job,
                TrainingJobStarted(
                    **_common(job),
                    from_state="queued",
                    allocation_id=_allocation_of(job),
                    backend=BACKEND,
                    attempt=job.attempt,
                    resumed_from_checkpoint_uri=checkpoint.uri if checkpoint else None,
                ),
            )
        if checkpoint is not None:
            await session.exec(  # type: ignore[call-overload]
                delete(TrainingMetric).where(
                    col(TrainingMetric.job_id) == job.id, col(TrainingMetric.step) > checkpoint.step
                )
            )
            job.resumed_from_step = checkpoint.step
            job.step = checkpoint.step
        session.add(job)
        last_seq = (
            await session.exec(select(func.max(TrainingLog.seq)).where(TrainingLog.job_id == job.id))
        ).one()
    return RunStart(job, checkpoint, (last_seq or 0) + 1)


@dataclass
class ProgressBatch:
    """What a run reported since the last write."""

    step: int | None = None
    total_steps: int | None = None
    eta_s: float | None = None
    metrics: list[tuple[int, str, float | None]] | None = None
    logs: list[tuple[int, str, str]] | None = None


async def record_progress(db: Database, job_id: str, batch: ProgressBatch) -> None:
    """Store a batch of progress, metric values (by step; a repeated step overwrites) and log lines."""
    async with db.transaction() as session:
        job = await session.get(TrainingJob, job_id, with_for_update=True)
        if job is None or MACHINE.is_terminal(job.state):
            return
        if batch.step is not None:
            job.step, job.total_steps, job.eta_s = batch.step, batch.total_steps, batch.eta_s
        if batch.metrics:
            rows = [{"job_id": job_id, "step": s, "name": n, "value": v} for s, n, v in batch.metrics]
            statement = insert(TrainingMetric).values(rows)
            await session.exec(  # type: ignore[call-overload]
                statement.on_conflict_do_update(
                    index_elements=["job_id", "name", "step"], set_={"value": statement.excluded.value}
                )
            )
            latest = dict(job.latest_metrics)
            latest.update({name: value for _, name, value in batch.metrics})
            job.latest_metrics = latest
        if batch.logs:
            now = _now()
            logs = [
                {"job_id": job_id, "seq": q, "level": lv, "message": m, "logged_at": now}
                for q, lv, m in batch.logs
            ]
            await session.exec(insert(TrainingLog).values(logs).on_conflict_do_nothing())  # type: ignore[call-overload]
        session.add(job)


async def record_checkpoint(db: Database, job_id: str, step: int, uri: str) -> None:
    """A checkpoint's upload completed: a retry of the run resumes from it."""
    async with db.transaction() as session:
        statement = insert(TrainingCheckpoint).values(job_id=job_id, step=step, uri=uri, uploaded_at=_now())
        await session.exec(  # type: ignore[call-overload]
            statement.on_conflict_do_update(index_elements=["job_id", "step"], set_={"uri": uri})
        )
        job = await session.get(TrainingJob, job_id, with_for_update=True)
        if job is not None and (job.last_checkpoint_step or 0) <= step:
            job.last_checkpoint_step, job.last_checkpoint_uri = step, uri
            session.add(job)


async def succeed(
    db: Database,
    tenant: str,
    job_id: str,
    *,
    model_uri: str,
    adapter_uri: str,
    steps: int,
    metrics: dict[str, float],
) -> TrainingJob:
    """running -> succeeded, with the model's location and final metrics; a job that ended meanwhile
    (cancelled as the run finished) is left as it is."""
    async with db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        if MACHINE.is_terminal(job.state):
            return job
        _move(job, "succeed")
        job.finished_at = _now()
        job.model_uri, job.adapter_uri = model_uri, adapter_uri
        job.step = job.total_steps = steps
        job.eta_s = 0.0
        job.latest_metrics = {**job.latest_metrics, **metrics}
        started = job.started_at or job.created_at
        await _publish(
            session,
            job,
            TrainingJobSucceeded(
                **_common(job),
                from_state="running",
                model_uri=model_uri,
                metrics=metrics,
                checkpoint_uri=job.last_checkpoint_uri,
                steps=steps,
                duration_s=max(0.0, (job.finished_at - started).total_seconds()),
            ),
        )
    return job


async def fail(
    db: Database, tenant: str, job_id: str, *, error: str, exit_code: int | None = None
) -> TrainingJob | None:
    """Any active state -> failed with the error; a job that already ended is left as it is."""
    async with db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        if MACHINE.is_terminal(job.state):
            return None
        from_state = job.state
        _move(job, "fail")
        job.finished_at = _now()
        job.error, job.exit_code = error[:4000], exit_code
        await _publish(
            session,
            job,
            TrainingJobFailed(
                **_common(job),
                from_state=from_state,  # type: ignore[arg-type]
                error=job.error,
                exit_code=exit_code,
                last_checkpoint_uri=job.last_checkpoint_uri,
            ),
        )
    return job


async def cancel(db: Database, tenant: str, job_id: str) -> TrainingJob | None:
    """Any active state -> cancelled (by whoever asked); a job that already ended is left as it is."""
    async with db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        if MACHINE.is_terminal(job.state):
            return None
        from_state = job.state
        _move(job, "cancel")
        job.finished_at = _now()
        job.eta_s = None
        await _publish(
            session,
            job,
            TrainingJobCancelled(
                **_common(job, actor=job.cancel_requested_by),
                from_state=from_state,  # type: ignore[arg-type]
                reason=job.cancel_reason,
            ),
        )
    return job


# --- queries --------------------------------------------------------------------------------------


async def job(db: Database, tenant: str, job_id: str) -> TrainingJob:
    """One job of `tenant` (404 for another tenant's)."""
    async with db.session() as session:
        found = (
            await session.exec(
                select(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.tenant == tenant)
            )
        ).first()
    if found is None:
        raise NotFound(f"training job {job_id!r} does not exist")
    return found


async def jobs(db: Database, tenant: str, *, state: str | None, limit: int) -> Sequence[TrainingJob]:
    """The tenant's jobs, newest first."""
    statement = select(TrainingJob).where(TrainingJob.tenant == tenant)
    if state is not None:
        statement = statement.where(TrainingJob.state == state)
    async with db.session() as session:
        return (await session.exec(statement.order_by(col(TrainingJob.id).desc()).limit(limit))).all()


async def metric_series(db: Database, tenant: str, job_id: str, name: str | None) -> dict[str, list[Any]]:
    """Each metric's (step, value) points in step order, by name."""
    await job(db, tenant, job_id)
    statement = select(TrainingMetric).where(TrainingMetric.job_id == job_id)
    if name is not None:
        statement = statement.where(TrainingMetric.name == name)
    async with db.session() as session:
        rows = (
            await session.exec(statement.order_by(col(TrainingMetric.name), col(TrainingMetric.step)))
        ).all()
    series: dict[str, list[Any]] = {}
    for row in rows:
        series.setdefault(row.name, []).append((row.step, row.value))
    return series


async def logs(
    db: Database, tenant: str, job_id: str, *, after: int | None, tail: int
) -> Sequence[TrainingLog]:
    """Log lines in order: those after `after` (up to `tail`), or the last `tail` lines."""
    await job(db, tenant, job_id)
    statement = select(TrainingLog).where(TrainingLog.job_id == job_id)
    async with db.session() as session:
        if after is not None:
            statement = statement.where(TrainingLog.seq > after).order_by(col(TrainingLog.seq)).limit(tail)
            return (await session.exec(statement)).all()
        newest = (await session.exec(statement.order_by(col(TrainingLog.seq).desc()).limit(tail))).all()
    return list(reversed(newest))


# --- helpers --------------------------------------------------------------------------------------


async def _locked(session: AsyncSession, tenant: str, job_id: str) -> TrainingJob:
    found = (
        await session.exec(
            select(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.tenant == tenant)
            .with_for_update()
        )
    ).first()
    if found is None:
        raise NotFound(f"training job {job_id!r} does not exist")
    return found


def _move(job: TrainingJob, transition: str) -> None:
    job.state = MACHINE.transition(job.state, transition).target
    job.sequence += 1


def _common(job: TrainingJob, actor: str | None = None) -> dict[str, Any]:
    return {
        "tenant_id": job.tenant,
        "occurred_at": _now(),
        "job_id": job.id,
        "project_id": job.project_id,
        "kind": job.kind,
        "actor": actor,
    }


async def _publish(session: AsyncSession, job: TrainingJob, payload: TrainingJobEvent) -> None:
    session.add(job)
    await outbox.publish(session, payload.to_envelope(sequence=job.sequence))


# --- evaluation jobs: commands --------------------------------------------------------------------


def evaluation_request_key(evaluation_id: str) -> str:
    """The idempotency key of an evaluation created through the API (its workflow's own key)."""
    return f"{evaluation_workflow_id(evaluation_id)}:evaluate"


@dataclass(frozen=True)
class EvaluationInputs:
    """What an evaluation reads: the model and the test file (where, and the Forge ids they came from)."""

    model_uri: str
    test_bucket: str
    test_key: str
    model_version_id: str | None = None
    training_job_id: str | None = None
    base_model_id: str | None = None
    dataset_id: str | None = None
    dataset_version_id: str | None = None
    test_file: str | None = None


def _new_evaluation(
    tenant: str,
    user: str | None,
    inputs: EvaluationInputs,
    settings: EvaluationSettings,
    request_key: str | None = None,
) -> EvaluationJob:
    evaluation_id = uuid7()
    thresholds = settings.thresholds
    return EvaluationJob(
        id=evaluation_id,
        tenant=tenant,
        request_key=request_key or evaluation_request_key(evaluation_id),
        created_by=user,
        model_uri=inputs.model_uri,
        model_version_id=inputs.model_version_id,
        training_job_id=inputs.training_job_id,
        base_model_id=inputs.base_model_id,
        dataset_id=inputs.dataset_id,
        dataset_version_id=inputs.dataset_version_id,
        test_file=inputs.test_file,
        test_bucket=inputs.test_bucket,
        test_key=inputs.test_key,
        data_format=settings.data_format,
        max_new_tokens=settings.max_new_tokens,
        max_records=settings.max_records,
        thresholds=None
        if thresholds is None
        else {name: bound.model_dump(exclude_none=True) for name, bound in thresholds.items()},
        sequence=1,
    )


async def _record_evaluation(session: AsyncSession, job: EvaluationJob, user: str | None) -> None:
    session.add(job)
    minimums = {name: bound["min"] for name, bound in (job.thresholds or {}).items() if "min" in bound}
    await _publish_evaluation(
        session,
        job,
        EvaluationJobCreated(
            **_evaluation_common(job, actor=user),
            mode="automatic",
            dataset_version_ids=[job.dataset_version_id] if job.dataset_version_id else [],
            metrics=list(EVALUATION_METRICS),
            thresholds=minimums,
        ),
    )


async def create_evaluation(
    db: Database,
    tenant: str,
    user: str | None,
    inputs: EvaluationInputs,
    settings: EvaluationSettings,
    *,
    request_key: str,
) -> EvaluationJob:
    """Record a new evaluation (pending) and its `created` event (the activity's path: its caller runs
    it); with a `request_key` that the tenant used before, the evaluation created then is returned
    instead (nothing new is written)."""
    job = _new_evaluation(tenant, user, inputs, settings, request_key)
    try:
        async with db.transaction() as session:
            if (found := await _evaluation_by_key(session, tenant, job.request_key)) is not None:
                return found
            await _record_evaluation(session, job, user)
    except IntegrityError:  # the same request_key created concurrently: that one wins
        async with db.session() as session:
            found = await _evaluation_by_key(session, tenant, job.request_key)
        if found is None:
            raise
        return found
    return job


async def evaluation_inputs(deps: Deps, tenant: str, body: CreateEvaluationJob) -> EvaluationInputs:
    """Resolve what an API request names: the model (the tenant's succeeded training job, a model
    version or a base model of the hub) and the test file of a dataset version (404 for another
    tenant's)."""
    model, test_set = body.model, body.test_set
    trained: TrainingJob | None = None
    if model.training_job_id is not None:
        trained = await job(deps.db, tenant, model.training_job_id)
        if trained.state != "succeeded" or trained.model_uri is None:
            raise Conflict(
                f"model.training_job_id: training job {trained.id} is {trained.state}; it has no model to "
                "evaluate until it succeeded"
            )
    resolved = await resolve(
        deps,
        tenant,
        dataset_id=test_set.dataset_id,
        dataset_version_id=test_set.version_id,
        base_model_id=model.base_model_id,
        model_version_id=model.model_version_id,
    )
    assert resolved.dataset is not None
    if trained is not None:
        assert trained.model_uri is not None
        model_uri = trained.model_uri
    elif resolved.model_version is not None:
        model_uri = resolved.model_version.artifact_uri
    else:
        assert resolved.base_model is not None
        model_uri = resolved.base_model.uri
    return EvaluationInputs(
        model_uri=model_uri,
        test_bucket=resolved.dataset.bucket,
        test_key=_file_key(resolved.dataset, test_set.file, "test_set.file"),
        model_version_id=model.model_version_id,
        training_job_id=model.training_job_id
        or (resolved.model_version.training_job_id if resolved.model_version else None),
        base_model_id=model.base_model_id,
        dataset_id=resolved.dataset.dataset_id,
        dataset_version_id=resolved.dataset.version_id,
        test_file=test_set.file,
    )


async def submit_evaluation(
    deps: Deps, tenant: str, user: str | None, body: CreateEvaluationJob
) -> EvaluationJob:
    """Resolve what the request names, then record the evaluation and start its workflow in one
    transaction: one that cannot be started leaves nothing behind (503)."""
    inputs = await evaluation_inputs(deps, tenant, body)
    job = _new_evaluation(tenant, user, inputs, body)

    async def record(session: AsyncSession) -> None:
        await _record_evaluation(session, job, user)

    await record_and_start(
        deps,
        record,
        EVALUATION_WORKFLOW,
        evaluation_request(job),
        evaluation_workflow_id(job.id),
        what="evaluation",
    )
    return job


def evaluation_request(job: EvaluationJob) -> EvaluationRequest:
    """The activity request that runs an existing evaluation job."""
    return EvaluationRequest(
        tenant_id=job.tenant,
        evaluation_job_id=job.id,
        request_key=job.request_key,
        model_uri=job.model_uri,
        test_bucket=job.test_bucket,
        test_key=job.test_key,
        data_format=job.data_format,  # type: ignore[arg-type]
        max_new_tokens=job.max_new_tokens,
        max_records=job.max_records,
        model_version_id=job.model_version_id,
        training_job_id=job.training_job_id,
        dataset_version_id=job.dataset_version_id,
    )


async def request_evaluation_cancel(
    deps: Deps, tenant: str, evaluation_id: str, *, actor: str | None, reason: str | None
) -> EvaluationJob:
    """Ask the evaluation's workflow to stop (it kills the runtime and ends it `cancelled`); one whose
    workflow is gone is cancelled here directly. 409 when it already ended."""
    async with deps.db.transaction() as session:
        job = await _locked_evaluation(session, tenant, evaluation_id)
        EVALUATION_MACHINE.transition(job.state, "cancel")  # 409 now rather than a silent no-op later
        job.cancel_requested_by, job.cancel_reason = actor, reason
        session.add(job)
    client = deps.runtime.temporal
    try:
        if client is None:
            raise RuntimeError("the Temporal client is not connected")
        await client.get_workflow_handle(evaluation_workflow_id(evaluation_id)).cancel()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise Unavailable(f"the workflow engine could not cancel the evaluation: {error}") from error
        return await cancel_evaluation(deps.db, tenant, evaluation_id) or job
    return job


async def begin_evaluation(db: Database, tenant: str, evaluation_id: str) -> EvaluationJob:
    """pending -> queued -> running (one event each), counting the attempt; an evaluation already
    running (a retry after a lost worker) just counts the attempt; an ended one is returned as it is."""
    async with db.transaction() as session:
        job = await _locked_evaluation(session, tenant, evaluation_id)
        if EVALUATION_MACHINE.is_terminal(job.state):
            return job
        if job.state == "pending":
            _move_evaluation(job, "enqueue")
            job.phase = "queued"
            await _publish_evaluation(
                session, job, EvaluationJobQueued(**_evaluation_common(job), from_state="pending")
            )
        job.attempt += 1
        if job.state == "queued":
            _move_evaluation(job, "start")
            job.started_at = _now()
            await _publish_evaluation(
                session,
                job,
                EvaluationJobStarted(**_evaluation_common(job), from_state="queued", attempt=job.attempt),
            )
        job.phase = "downloading"
        session.add(job)
    return job


async def record_evaluation_phase(db: Database, evaluation_id: str, phase: str) -> None:
    """Where a running evaluation is (downloading, evaluating, uploading)."""
    async with db.transaction() as session:
        job = await session.get(EvaluationJob, evaluation_id, with_for_update=True)
        if job is None or EVALUATION_MACHINE.is_terminal(job.state):
            return
        job.phase = phase
        session.add(job)


async def succeed_evaluation(
    db: Database,
    tenant: str,
    evaluation_id: str,
    *,
    metrics: dict[str, float],
    records: Sequence[dict[str, str]],
    records_uri: str,
    report_uri: str,
) -> EvaluationJob:
    """running -> succeeded with the metrics, the kept records and where the outputs are; one that
    ended meanwhile (cancelled as the run finished) is left as it is."""
    async with db.transaction() as session:
        job = await _locked_evaluation(session, tenant, evaluation_id)
        if EVALUATION_MACHINE.is_terminal(job.state):
            return job
        _move_evaluation(job, "succeed")
        job.finished_at = _now()
        job.phase = "done"
        job.metrics = dict(metrics)
        if job.thresholds is not None:
            job.passed, job.failed_checks = judge(metrics, job.thresholds)
        job.record_count = len(records)
        job.records_uri, job.report_uri = records_uri, report_uri
        await session.exec(  # type: ignore[call-overload]
            delete(EvaluationRecord).where(col(EvaluationRecord.evaluation_id) == evaluation_id)
        )
        rows = [
            {
                "evaluation_id": evaluation_id,
                "seq": seq,
                "prompt": record["prompt"],
                "reference": record["reference"],
                "prediction": record["prediction"],
            }
            for seq, record in enumerate(records, start=1)
        ]
        for start in range(0, len(rows), 1000):
            await session.exec(insert(EvaluationRecord).values(rows[start : start + 1000]))  # type: ignore[call-overload]
        await _publish_evaluation(
            session,
            job,
            EvaluationJobSucceeded(
                **_evaluation_common(job),
                from_state="running",
                metrics=metrics,
                passed=job.passed,  # absent when no thresholds were given: nothing was judged
                failed_checks=list(job.failed_checks),
                not_judged_reason=NOT_JUDGED if job.passed is None else None,
                report_uri=report_uri,
                outputs_uri=records_uri,
            ),
        )
    return job


async def fail_evaluation(
    db: Database, tenant: str, evaluation_id: str, *, error: str, exit_code: int | None = None
) -> EvaluationJob | None:
    """Any active state -> failed with the error; one that already ended is left as it is (None)."""
    async with db.transaction() as session:
        job = await _locked_evaluation(session, tenant, evaluation_id)
        if EVALUATION_MACHINE.is_terminal(job.state):
            return None
        from_state = job.state
        _move_evaluation(job, "fail")
        job.finished_at = _now()
        job.error, job.exit_code = error[:4000], exit_code
        await _publish_evaluation(
            session,
            job,
            EvaluationJobFailed(
                **_evaluation_common(job),
                from_state=from_state,  # type: ignore[arg-type]
                error=job.error,
            ),
        )
    return job


async def cancel_evaluation(db: Database, tenant: str, evaluation_id: str) -> EvaluationJob | None:
    """Any active state -> cancelled; one that already ended is left as it is (None)."""
    async with db.transaction() as session:
        job = await _locked_evaluation(session, tenant, evaluation_id)
        if EVALUATION_MACHINE.is_terminal(job.state):
            return None
        from_state = job.state
        _move_evaluation(job, "cancel")
        job.finished_at = _now()
        await _publish_evaluation(
            session,
            job,
            EvaluationJobCancelled(
                **_evaluation_common(job, actor=job.cancel_requested_by),
                from_state=from_state,  # type: ignore[arg-type]
                reason=job.cancel_reason,
            ),
        )
    return job


# --- evaluation jobs: queries ---------------------------------------------------------------------


async def evaluation(db: Database, tenant: str, evaluation_id: str) -> EvaluationJob:
    """One evaluation of `tenant` (404 for another tenant's)."""
    async with db.session() as session:
        found = (
            await session.exec(
                select(EvaluationJob).where(EvaluationJob.id == evaluation_id, EvaluationJob.tenant == tenant)
            )
        ).first()
    if found is None:
        raise NotFound(f"evaluation job {evaluation_id!r} does not exist")
    return found


async def evaluations(db: Database, tenant: str, *, state: str | None, limit: int) -> Sequence[EvaluationJob]:
    """The tenant's evaluations, newest first."""
    statement = select(EvaluationJob).where(EvaluationJob.tenant == tenant)
    if state is not None:
        statement = statement.where(EvaluationJob.state == state)
    async with db.session() as session:
        return (await session.exec(statement.order_by(col(EvaluationJob.id).desc()).limit(limit))).all()


async def evaluation_records(
    db: Database, tenant: str, evaluation_id: str, *, offset: int, limit: int
) -> tuple[EvaluationJob, Sequence[EvaluationRecord]]:
    """The records an evaluation kept, in test-file order, from `offset` (0-based)."""
    job = await evaluation(db, tenant, evaluation_id)
    async with db.session() as session:
        rows = (
            await session.exec(
                select(EvaluationRecord)
                .where(EvaluationRecord.evaluation_id == evaluation_id, EvaluationRecord.seq > offset)
                .order_by(col(EvaluationRecord.seq))
                .limit(limit)
            )
        ).all()
    return job, rows


# --- evaluation jobs: helpers ---------------------------------------------------------------------


async def _evaluation_by_key(session: AsyncSession, tenant: str, request_key: str) -> EvaluationJob | None:
    statement = select(EvaluationJob).where(
        EvaluationJob.tenant == tenant, EvaluationJob.request_key == request_key
    )
    return (await session.exec(statement)).first()


async def _locked_evaluation(session: AsyncSession, tenant: str, evaluation_id: str) -> EvaluationJob:
    found = (
        await session.exec(
            select(EvaluationJob)
            .where(EvaluationJob.id == evaluation_id, EvaluationJob.tenant == tenant)
            .with_for_update()
        )
    ).first()
    if found is None:
        raise NotFound(f"evaluation job {evaluation_id!r} does not exist")
    return found


def _move_evaluation(job: EvaluationJob, transition: str) -> None:
    job.state = EVALUATION_MACHINE.transition(job.state, transition).target
    job.sequence += 1


def _evaluation_common(job: EvaluationJob, actor: str | None = None) -> dict[str, Any]:
    return {
        "tenant_id": job.tenant,
        "occurred_at": _now(),
        "evaluation_id": job.id,
        "model_version_id": job.model_version_id,  # absent when the model is not a registered version
        "actor": actor,
    }


async def _publish_evaluation(session: AsyncSession, job: EvaluationJob, payload: EvaluationJobEvent) -> None:
    session.add(job)
    await outbox.publish(session, payload.to_envelope(sequence=job.sequence))
