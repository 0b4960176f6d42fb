"""HTTP API of the training service: parse, call a use case, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, status
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action
from forge_kit.types import NonNegativeInt64Param

from forge_training import service
from forge_training.domain import percent
from forge_training.schemas import (
    CancelEvaluationJob,
    CancelTrainingJob,
    CreateEvaluationJob,
    CreateTrainingJob,
    EvaluatedModelView,
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
    TestSetView,
    TrainingJobList,
    TrainingJobView,
)
from forge_training.service import Deps
from forge_training.tables import EvaluationJob, TrainingJob

CanTrainingRead = Annotated[Principal, allow(Action.TRAINING_READ)]
CanTrainingRun = Annotated[Principal, allow(Action.TRAINING_RUN)]
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
        base_model_id=job.base_model_id,
        base_model_uri=job.base_model_uri,
        dataset_id=job.dataset_id,
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
    body: CreateTrainingJob, caller: CanTrainingRun, request: Request
) -> TrainingJobView:
    """Create a LoRA fine-tuning job of a base model of the hub on a dataset version, and start it (404
    when the tenant has no such dataset version or base model; 422 for a resource request the scheduler
    cannot take; 503, with nothing created, when the workflow engine cannot start it)."""
    return view(await service.submit_job(_deps(request), caller.tenant_id, caller.actor, body))


@router.get("")
async def list_training_jobs(
    caller: CanTrainingRead,
    request: Request,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TrainingJobList:
    found = await service.jobs(_deps(request).db, caller.tenant_id, state=state, limit=limit)
    return TrainingJobList(items=[view(job) for job in found])


@router.get("/{job_id}")
async def get_training_job(job_id: str, caller: CanTrainingRead, request: Request) -> TrainingJobView:
    return view(await service.job(_deps(request).db, caller.tenant_id, job_id))


@router.get("/{job_id}/metrics")
async def get_training_job_metrics(
    job_id: str,
    caller: CanTrainingRead,
    request: Request,
    name: Annotated[str | None, Query(max_length=100)] = None,
) -> MetricsView:
    """The metric series (train_loss, eval_loss, learning_rate, ...) by step; `name` picks one."""
    series = await service.metric_series(_deps(request).db, caller.tenant_id, job_id, name)
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
    caller: CanTrainingRead,
    request: Request,
    tail: Annotated[int, Query(ge=1, le=5000)] = 200,
    after: Annotated[NonNegativeInt64Param | None, Query()] = None,
) -> LogsView:
    """Live logs: the last `tail` lines, or the lines after sequence number `after`."""
    lines = await service.logs(_deps(request).db, caller.tenant_id, job_id, after=after, tail=tail)
    items = [
        LogLine(seq=line.seq, level=line.level, message=line.message, logged_at=line.logged_at)
        for line in lines
    ]
    return LogsView(job_id=job_id, lines=items, next_after=items[-1].seq if items else (after or 0))


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_training_job(
    job_id: str,
    caller: CanTrainingRun,
    request: Request,
    body: Annotated[CancelTrainingJob | None, Body()] = None,
) -> TrainingJobView:
    """Stop a job: its runtime is killed and it ends `cancelled` (409 when it already ended)."""
    reason = body.reason if body else None
    job = await service.request_cancel(
        _deps(request), caller.tenant_id, job_id, actor=caller.actor, reason=reason
    )
    return view(job)


# --- evaluation jobs ------------------------------------------------------------------------------


def evaluation_view(job: EvaluationJob) -> EvaluationJobView:
    """An evaluation as the API shows it."""
    return EvaluationJobView(
        id=job.id,
        state=job.state,
        sequence=job.sequence,
        model=EvaluatedModelView(
            uri=job.model_uri,
            training_job_id=job.training_job_id,
            model_version_id=job.model_version_id,
            base_model_id=job.base_model_id,
        ),
        test_set=TestSetView(
            dataset_id=job.dataset_id,
            dataset_version_id=job.dataset_version_id,
            file=job.test_file,
            uri=f"s3://{job.test_bucket}/{job.test_key}",
        ),
        data_format=job.data_format,
        max_new_tokens=job.max_new_tokens,
        max_records=job.max_records,
        progress=EvaluationProgress(phase=job.phase, attempt=job.attempt),
        metrics=job.metrics,
        thresholds=job.thresholds,
        passed=job.passed,
        failed_checks=list(job.failed_checks),
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
    body: CreateEvaluationJob, caller: CanTrainingRun, request: Request
) -> EvaluationJobView:
    """Evaluate a model (a succeeded training job's, a model version or a base model) on a file of a
    dataset version and start it (EV-1, EV-2); judged against `thresholds` when given."""
    return evaluation_view(
        await service.submit_evaluation(_deps(request), caller.tenant_id, caller.actor, body)
    )


@evaluation_router.get("")
async def list_evaluation_jobs(
    caller: CanTrainingRead,
    request: Request,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EvaluationJobList:
    found = await service.evaluations(_deps(request).db, caller.tenant_id, state=state, limit=limit)
    return EvaluationJobList(items=[evaluation_view(job) for job in found])


@evaluation_router.get("/{evaluation_id}")
async def get_evaluation_job(
    evaluation_id: str, caller: CanTrainingRead, request: Request
) -> EvaluationJobView:
    """State, progress, metrics, where the records and the report are, and the error of a failed one."""
    return evaluation_view(await service.evaluation(_deps(request).db, caller.tenant_id, evaluation_id))


@evaluation_router.get("/{evaluation_id}/records")
async def get_evaluation_records(
    evaluation_id: str,
    caller: CanTrainingRead,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[NonNegativeInt64Param, Query()] = 0,
) -> EvaluationRecordsView:
    """The actual inputs and outputs (EV-5): prompt, reference and prediction, in test-file order."""
    job, rows = await service.evaluation_records(
        _deps(request).db, caller.tenant_id, evaluation_id, offset=offset, limit=limit
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
    caller: CanTrainingRun,
    request: Request,
    body: Annotated[CancelEvaluationJob | None, Body()] = None,
) -> EvaluationJobView:
    """Stop an evaluation: its runtime is killed and it ends `cancelled` (409 when it already ended)."""
    reason = body.reason if body else None
    job = await service.request_evaluation_cancel(
        _deps(request), caller.tenant_id, evaluation_id, actor=caller.actor, reason=reason
    )
    return evaluation_view(job)
