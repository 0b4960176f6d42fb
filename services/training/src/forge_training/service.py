"""Use cases of the training service: one function per command, one transaction each, every state
change through the job's state machine with exactly one event in the outbox; and the queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from forge_contracts.activities.training import WORKFLOW, TrainingJobInput, workflow_id
from forge_contracts.envelope import uuid7
from forge_contracts.events.base import ResourceRequest
from forge_contracts.events.training import (
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
from forge_kit.errors import NotFound, Unavailable
from forge_kit.observability import logger
from forge_kit.runtime import ServiceRuntime
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError, RPCStatusCode

from forge_training.domain import BACKEND, LOCAL_QUEUE, MACHINE
from forge_training.schemas import CreateTrainingJob
from forge_training.settings import TrainingSettings
from forge_training.storage import ObjectStore
from forge_training.tables import TrainingCheckpoint, TrainingJob, TrainingLog, TrainingMetric

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


async def create_job(db: Database, tenant: str, user: str | None, body: CreateTrainingJob) -> TrainingJob:
    """Record a new job (pending) and its `created` event."""
    job = TrainingJob(
        id=uuid7(),
        tenant=tenant,
        project_id=body.project_id,
        name=body.name,
        created_by=user,
        priority=body.priority,
        base_model_uri=body.base_model.uri,
        base_model_version_id=body.base_model.model_version_id,
        dataset_version_id=body.dataset.version_id,
        dataset_bucket=body.dataset.bucket,
        train_key=body.dataset.train_key,
        validation_key=body.dataset.validation_key,
        data_format=body.data_format,
        hyperparameters=body.hyperparameters.model_dump(),
        lora=body.lora.model_dump(),
        resources=body.resources.model_dump(),
        allocation_request_id=uuid7(),
        queue=LOCAL_QUEUE,
        sequence=1,
    )
    async with db.transaction() as session:
        session.add(job)
        await _publish(
            session,
            job,
            TrainingJobCreated(
                **_common(job, actor=user),
                name=job.name,
                dataset_version_ids=[job.dataset_version_id],
                base_model_version_id=job.base_model_version_id,
                method="lora",
                hyperparameters={**job.hyperparameters, "lora": job.lora},
                resources=ResourceRequest.model_validate(job.resources),
                priority=job.priority,
            ),
        )
    return job


async def submit_job(deps: Deps, tenant: str, user: str | None, body: CreateTrainingJob) -> TrainingJob:
    """Create a job and start its workflow. If the workflow cannot be started the job fails (with an
    event), so no job is left pending with nothing to run it."""
    job = await create_job(deps.db, tenant, user, body)
    settings = deps.settings
    try:
        client = deps.runtime.temporal
        if client is None:
            raise RuntimeError("the Temporal client is not connected")
        await client.start_workflow(
            WORKFLOW,
            TrainingJobInput(
                tenant_id=tenant,
                job_id=job.id,
                heartbeat_timeout_s=settings.heartbeat_timeout_s,
                run_attempts=settings.run_attempts,
            ),
            id=workflow_id(job.id),
            task_queue=deps.runtime.task_queue,
        )
    except Exception as error:  # any failure to start leaves the job unrunnable: fail it, then say so
        log.exception("training.workflow_start_failed", job_id=job.id, error=repr(error))
        await fail(deps.db, tenant, job.id, error=f"could not start the job's workflow: {error}")
        raise Unavailable("the workflow engine could not start the job; it was marked failed") from error
    return job


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


async def enqueue(db: Database, tenant: str, job_id: str) -> TrainingJob:
    """pending -> queued; a job already past pending is returned unchanged (activity retries)."""
    async with db.transaction() as session:
        job = await _locked(session, tenant, job_id)
        if job.state != "pending":
            return job
        _move(job, "enqueue")
        await _publish(
            session,
            job,
            TrainingJobQueued(
                **_common(job), from_state="pending", allocation_id=job.allocation_request_id, queue=job.queue
            ),
        )
    return job


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
                    allocation_id=job.allocation_request_id,
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
