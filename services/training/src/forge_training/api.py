"""HTTP API of the training service: parse, call a use case, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, status
from forge_contracts.events.base import TenantId

from forge_training import service
from forge_training.domain import percent
from forge_training.schemas import (
    CancelEvaluationJob,
    CancelTrainingJob,
    CreateEvaluationJob,
    CreateTrainingJob,
    EvaluatedModel,
    EvaluationJobList,
    EvaluationJobView,
    EvaluationProgress,
    EvaluationRecordsView,
    EvaluationRecordView,
    LogLine,
    LogsView,
    MetricPoint,
    MetricSeries,
    MetricsView,
    Outputs,
    Progress,
    TestSet,
    TrainingJobList,
    TrainingJobView,
)
from forge_training.service import Deps
from forge_training.tables import EvaluationJob, TrainingJob

Tenant = Annotated[TenantId, Header(alias="x-forge-tenant")]
User = Annotated[str | None, Header(alias="x-forge-user", max_length=256)]

router = APIRouter(prefix="/training-jobs", tags=["training jobs"])
evaluation_router = APIRouter(prefix="/evaluation-jobs", tags=["evaluation jobs"])


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def view(job: TrainingJob) -> TrainingJobView:
    """A job as the API shows it."""
    return TrainingJobView(
        id=job.id,
        name=job.name,
        project_id=job.project_id,
        kind=job.kind,
        method=job.method,
        state=job.state,
        sequence=job.sequence,
        progress=Progress(
            step=job.step,
            total_steps=job.total_steps,
            percent=percent(job.step, job.total_steps),
            eta_s=job.eta_s,
        ),
        latest_metrics=job.latest_metrics,
        outputs=Outputs(
            model_uri=job.model_uri,
            adapter_uri=job.adapter_uri,
            last_checkpoint_uri=job.last_checkpoint_uri,
            last_checkpoint_step=job.last_checkpoint_step,
        ),
        error=job.error,
        exit_code=job.exit_code,
        attempt=job.attempt,
        resumed_from_step=job.resumed_from_step,
        scheduler_project_id=job.scheduler_project_id,
        allocation_id=job.allocation_id,
        base_model_uri=job.base_model_uri,
        dataset_version_id=job.dataset_version_id,
        hyperparameters=job.hyperparameters,
        lora=job.lora,
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_training_job(
    body: CreateTrainingJob, tenant: Tenant, user: User, request: Request
) -> TrainingJobView:
    """Create a LoRA fine-tuning job and start it."""
    return view(await service.submit_job(_deps(request), tenant, user, body))


@router.get("")
async def list_training_jobs(
    tenant: Tenant,
    request: Request,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TrainingJobList:
    found = await service.jobs(_deps(request).db, tenant, state=state, limit=limit)
    return TrainingJobList(items=[view(job) for job in found])


@router.get("/{job_id}")
async def get_training_job(job_id: str, tenant: Tenant, request: Request) -> TrainingJobView:
    return view(await service.job(_deps(request).db, tenant, job_id))


@router.get("/{job_id}/metrics")
async def get_training_job_metrics(
    job_id: str,
    tenant: Tenant,
    request: Request,
    name: Annotated[str | None, Query(max_length=100)] = None,
) -> MetricsView:
    """The metric series (train_loss, eval_loss, learning_rate, ...) by step; `name` picks one."""
    series = await service.metric_series(_deps(request).db, tenant, job_id, name)
    return MetricsView(
        job_id=job_id,
        series=[
            MetricSeries(name=n, points=[MetricPoint(step=s, value=v) for s, v in points])
            for n, points in series.items()
        ],
    )


@router.get("/{job_id}/logs")
async def get_training_job_logs(
    job_id: str,
    tenant: Tenant,
    request: Request,
    tail: Annotated[int, Query(ge=1, le=5000)] = 200,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> LogsView:
    """Live logs: the last `tail` lines, or the lines after sequence number `after`."""
    lines = await service.logs(_deps(request).db, tenant, job_id, after=after, tail=tail)
    items = [
        LogLine(seq=line.seq, level=line.level, message=line.message, logged_at=line.logged_at)
        for line in lines
    ]
    return LogsView(job_id=job_id, lines=items, next_after=items[-1].seq if items else (after or 0))


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_training_job(
    job_id: str,
    tenant: Tenant,
    user: User,
    request: Request,
    body: Annotated[CancelTrainingJob | None, Body()] = None,
) -> TrainingJobView:
    """Stop a job: its runtime is killed and it ends `cancelled` (409 when it already ended)."""
    reason = body.reason if body else None
    job = await service.request_cancel(_deps(request), tenant, job_id, actor=user, reason=reason)
    return view(job)


# --- evaluation jobs ------------------------------------------------------------------------------


def evaluation_view(job: EvaluationJob) -> EvaluationJobView:
    """An evaluation as the API shows it."""
    return EvaluationJobView(
        id=job.id,
        state=job.state,
        sequence=job.sequence,
        model=EvaluatedModel(
            uri=job.model_uri, model_version_id=job.model_version_id, training_job_id=job.training_job_id
        ),
        test_set=TestSet(bucket=job.test_bucket, key=job.test_key, dataset_version_id=job.dataset_version_id),
        data_format=job.data_format,
        max_new_tokens=job.max_new_tokens,
        max_records=job.max_records,
        progress=EvaluationProgress(phase=job.phase, attempt=job.attempt),
        metrics=job.metrics,
        record_count=job.record_count,
        records_uri=job.records_uri,
        report_uri=job.report_uri,
        error=job.error,
        exit_code=job.exit_code,
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@evaluation_router.post("", status_code=status.HTTP_201_CREATED)
async def create_evaluation_job(
    body: CreateEvaluationJob, tenant: Tenant, user: User, request: Request
) -> EvaluationJobView:
    """Evaluate a merged model on a test file and start it (EV-1, EV-2)."""
    return evaluation_view(await service.submit_evaluation(_deps(request), tenant, user, body))


@evaluation_router.get("")
async def list_evaluation_jobs(
    tenant: Tenant,
    request: Request,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EvaluationJobList:
    found = await service.evaluations(_deps(request).db, tenant, state=state, limit=limit)
    return EvaluationJobList(items=[evaluation_view(job) for job in found])


@evaluation_router.get("/{evaluation_id}")
async def get_evaluation_job(evaluation_id: str, tenant: Tenant, request: Request) -> EvaluationJobView:
    """State, progress, metrics, where the records and the report are, and the error of a failed one."""
    return evaluation_view(await service.evaluation(_deps(request).db, tenant, evaluation_id))


@evaluation_router.get("/{evaluation_id}/records")
async def get_evaluation_records(
    evaluation_id: str,
    tenant: Tenant,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EvaluationRecordsView:
    """The actual inputs and outputs (EV-5): prompt, reference and prediction, in test-file order."""
    job, rows = await service.evaluation_records(
        _deps(request).db, tenant, evaluation_id, offset=offset, limit=limit
    )
    records = [
        EvaluationRecordView(
            seq=row.seq, prompt=row.prompt, reference=row.reference, prediction=row.prediction
        )
        for row in rows
    ]
    more = job.record_count is not None and offset + len(records) < job.record_count
    return EvaluationRecordsView(
        evaluation_id=job.id,
        total=job.record_count,
        records=records,
        next_offset=offset + len(records) if more else None,
    )


@evaluation_router.post("/{evaluation_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_evaluation_job(
    evaluation_id: str,
    tenant: Tenant,
    user: User,
    request: Request,
    body: Annotated[CancelEvaluationJob | None, Body()] = None,
) -> EvaluationJobView:
    """Stop an evaluation: its runtime is killed and it ends `cancelled` (409 when it already ended)."""
    reason = body.reason if body else None
    job = await service.request_evaluation_cancel(
        _deps(request), tenant, evaluation_id, actor=user, reason=reason
    )
    return evaluation_view(job)
