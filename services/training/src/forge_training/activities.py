"""Temporal activities of the training service (task queue `forge-training`), names and models from
`forge_contracts.activities.training`.

`run_training` is the long one: it downloads the job's inputs, runs the training runtime as a child
process, stores what it reports (progress, metrics, logs), uploads every checkpoint as it appears and
the adapter and merged model at the end, and heartbeats throughout. A retry (this worker or another,
after a crash) resumes from the newest uploaded checkpoint. Cancelling the activity kills the runtime.

`run_evaluation` runs the runtime's `evaluate` on a merged model and a test file the same way (one
child process through `run_runtime`, heartbeats throughout) and keeps the metrics, every
{prompt, reference, prediction} record and a JSON report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from forge_contracts.activities.training import (
    CANCEL_EVALUATION,
    CANCEL_JOB,
    FAIL_EVALUATION,
    FAIL_JOB,
    QUEUE_JOB,
    RUN_EVALUATION,
    RUN_TRAINING,
    EvaluationRequest,
    EvaluationResult,
    FailJob,
    JobRef,
    JobStatus,
    QueueJob,
    TrainingOutcome,
    TrainingProgress,
)
from forge_kit.errors import NotFound
from forge_kit.observability import logger
from forge_kit.runtime_process import RuntimeProcess, run_runtime
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_training import service
from forge_training.domain import (
    EvaluationLayout,
    EvaluationPaths,
    ForeignObject,
    InvalidUri,
    JobLayout,
    ObjectLocation,
    RunPaths,
    check_own_dataset_file,
    check_own_model,
    error_message,
    evaluate_spec,
    evaluation_metrics,
    judge,
    parse_s3_uri,
    runtime_spec,
)
from forge_training.schemas import EvaluationSettings
from forge_training.service import Deps, ProgressBatch, RunStart
from forge_training.storage import MissingObject
from forge_training.tables import EvaluationJob, TrainingJob

log = logger(component="training.activities")

RUNTIME_MODULE = "forge_training_runtime"


class ProgressRecorder:
    """Buffers what the runtime reports and writes it at most every `interval_s` (and on `flush`)."""

    def __init__(self, deps: Deps, job_id: str, next_log_seq: int, interval_s: float) -> None:
        self._deps, self._job_id, self._interval_s = deps, job_id, interval_s
        self._seq = next_log_seq
        self._batch = ProgressBatch(metrics=[], logs=[])
        self._written_at = 0.0
        self.progress = TrainingProgress(step=0)

    def progress_event(self, event: dict[str, Any]) -> None:
        step, total = int(event.get("step") or 0), event.get("total_steps")
        self.progress = self.progress.model_copy(update={"step": step, "total_steps": total})
        self._batch.step, self._batch.total_steps, self._batch.eta_s = step, total, event.get("eta_s")

    def metric_event(self, event: dict[str, Any]) -> None:
        if event.get("step") is None or not event.get("name"):
            return
        value = event.get("value")
        assert self._batch.metrics is not None
        self._batch.metrics.append(
            (int(event["step"]), str(event["name"]), None if value is None else float(value))
        )

    def log(self, message: str, level: str = "info") -> None:
        assert self._batch.logs is not None
        self._batch.logs.append((self._seq, level, message))
        self._seq += 1

    def checkpoint_uploaded(self, step: int) -> None:
        self.progress = self.progress.model_copy(update={"checkpoint_step": step})

    async def maybe_flush(self) -> None:
        if time.monotonic() - self._written_at >= self._interval_s:
            await self.flush()

    async def flush(self) -> None:
        batch, self._batch = self._batch, ProgressBatch(metrics=[], logs=[])
        self._written_at = time.monotonic()
        if batch.step is None and not batch.metrics and not batch.logs:
            return
        await service.record_progress(self._deps.db, self._job_id, batch)


def heartbeat_interval_s(heartbeat_timeout_s: float) -> float:
    """How often to heartbeat: well within the timeout, neither too chatty nor too lazy."""
    return min(5.0, max(0.2, heartbeat_timeout_s / 4))


@contextlib.asynccontextmanager
async def heartbeating(details: Callable[[], Any], interval_s: float) -> AsyncIterator[None]:
    """Heartbeat `details()` every `interval_s` while the block runs, even while the runtime is silent
    (imports, downloads, generation), so Temporal sees the activity alive and can deliver a cancel."""

    async def beat() -> None:
        while True:
            activity.heartbeat(details())
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(beat(), name=f"heartbeat:{activity.info().activity_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class TrainingActivities:
    """The activities, bound to the service's dependencies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def all(self) -> list[Callable[..., Any]]:
        return [self.queue_job, self.run_training, self.fail_job, self.cancel_job]

    @activity.defn(name=QUEUE_JOB)
    async def queue_job(self, ref: QueueJob) -> JobStatus:
        """pending -> queued on its allocation (idempotent)."""
        job = await service.enqueue(
            self.deps.db, ref.tenant_id, ref.job_id, allocation_id=ref.allocation_id, queue=ref.queue
        )
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=FAIL_JOB)
    async def fail_job(self, request: FailJob) -> JobStatus:
        """Active -> failed with the error (no-op on an ended job)."""
        with _gone_is_final():
            await service.fail(self.deps.db, request.tenant_id, request.job_id, error=request.error)
            job = await service.job(self.deps.db, request.tenant_id, request.job_id)
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=CANCEL_JOB)
    async def cancel_job(self, ref: JobRef) -> JobStatus:
        """Active -> cancelled (no-op on an ended job)."""
        with _gone_is_final():
            await service.cancel(self.deps.db, ref.tenant_id, ref.job_id)
            job = await service.job(self.deps.db, ref.tenant_id, ref.job_id)
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=RUN_TRAINING)
    async def run_training(self, ref: JobRef) -> TrainingOutcome:
        """Run (or resume) the job's training to its end; see the module docstring."""
        start = await service.begin_run(self.deps.db, ref.tenant_id, ref.job_id)
        if start.job.state != "running":
            return _ended(start.job)
        recorder = ProgressRecorder(
            self.deps, ref.job_id, start.next_log_seq, self.deps.settings.progress_interval_s
        )
        interval_s = heartbeat_interval_s(self.deps.settings.heartbeat_timeout_s)
        async with heartbeating(lambda: recorder.progress.model_dump(), interval_s):
            with tempfile.TemporaryDirectory(
                prefix=f"training-{ref.job_id}-", dir=self.deps.settings.work_dir
            ) as work_dir:
                return await self._run(start, Path(work_dir), recorder)

    async def _run(self, start: RunStart, work_dir: Path, recorder: ProgressRecorder) -> TrainingOutcome:
        job, store = start.job, self.deps.store
        paths = RunPaths.under(work_dir, has_validation=job.validation_key is not None)
        try:
            await self._download_inputs(job, paths)
        except MissingObject as missing:
            await recorder.flush()
            return await self._fail(job, f"input missing: {missing}", exit_code=None)
        resume = start.checkpoint is not None
        if start.checkpoint is not None:
            await store.download_prefix(
                parse_s3_uri(start.checkpoint.uri), paths.checkpoint_dir(start.checkpoint.step)
            )
            recorder.log(
                f"attempt {job.attempt}: resuming from checkpoint {start.checkpoint.uri} "
                f"(step {start.checkpoint.step})"
            )
        spec = runtime_spec(
            paths=paths,
            data_format=job.data_format,
            hyperparameters=job.hyperparameters,
            lora=job.lora,
            resume=resume,
            threads=self.deps.settings.runtime_threads,
        )

        async def started(process: RuntimeProcess) -> None:
            recorder.log(f"training runtime started (pid {process.pid}, attempt {job.attempt})")
            await recorder.flush()

        layout = self._layout(job)

        async def follow(event: dict[str, Any]) -> None:
            await self._on_event(job, event, layout, paths, recorder)

        run = await run_runtime(RUNTIME_MODULE, "train", spec, work_dir, on_start=started, on_event=follow)
        await recorder.flush()
        if not run.succeeded or run.result is None:
            message = error_message(run.error, run.stderr_tail, run.exit_code)
            return await self._fail(job, message, exit_code=run.exit_code)
        return await self._succeed(job, paths, run.result, recorder)

    async def _download_inputs(self, job: TrainingJob, paths: RunPaths) -> None:
        store = self.deps.store
        await store.download_prefix(parse_s3_uri(job.base_model_uri), paths.base_model_dir)
        await store.download_file(
            parse_s3_uri(f"s3://{job.dataset_bucket}/{job.train_key}"), paths.train_file
        )
        if job.validation_key is not None and paths.validation_file is not None:
            await store.download_file(
                parse_s3_uri(f"s3://{job.dataset_bucket}/{job.validation_key}"), paths.validation_file
            )

    async def _on_event(
        self,
        job: TrainingJob,
        event: dict[str, Any],
        layout: JobLayout,
        paths: RunPaths,
        recorder: ProgressRecorder,
    ) -> None:
        """Store one runtime event as it comes; upload each checkpoint."""
        kind = event.get("kind")
        if kind == "progress":
            recorder.progress_event(event)
            activity.heartbeat(recorder.progress.model_dump())
        elif kind == "metric":
            recorder.metric_event(event)
        elif kind == "log":
            recorder.log(str(event.get("message", "")), str(event.get("level") or "info"))
        elif kind == "checkpoint":
            await recorder.flush()
            step = int(event["step"])
            await self.deps.store.ensure_bucket()
            target = layout.checkpoint(step)
            await self.deps.store.upload_dir(paths.checkpoint_dir(step), target)
            await service.record_checkpoint(self.deps.db, job.id, step, target.uri)
            recorder.checkpoint_uploaded(step)
            recorder.log(f"checkpoint step-{step} uploaded to {target.uri}")
        elif kind == "error":
            recorder.log(error_message(event, "", None), "error")
        await recorder.maybe_flush()

    async def _succeed(
        self, job: TrainingJob, paths: RunPaths, result: dict[str, Any], recorder: ProgressRecorder
    ) -> TrainingOutcome:
        layout, store = self._layout(job), self.deps.store
        await store.ensure_bucket()
        await store.upload_dir(paths.out_dir / "adapter", layout.adapter)
        await store.upload_dir(paths.out_dir / "merged", layout.merged)
        metrics = {
            name: float(result[key])
            for name, key in (
                ("train_loss", "final_train_loss"),
                ("eval_loss", "final_eval_loss"),
                ("first_train_loss", "first_train_loss"),
            )
            if result.get(key) is not None
        }
        steps = int(result.get("steps") or recorder.progress.step)
        recorder.log(f"adapter and merged model uploaded to {layout.adapter.uri} and {layout.merged.uri}")
        await recorder.flush()
        await service.succeed(
            self.deps.db,
            job.tenant,
            job.id,
            model_uri=layout.merged.uri,
            adapter_uri=layout.adapter.uri,
            steps=steps,
            metrics=metrics,
        )
        return TrainingOutcome(
            job_id=job.id,
            state="succeeded",
            model_uri=layout.merged.uri,
            adapter_uri=layout.adapter.uri,
            steps=steps,
            metrics=metrics,
            resumed_from_step=result.get("resumed_from_step"),
        )

    async def _fail(self, job: TrainingJob, message: str, exit_code: int | None) -> TrainingOutcome:
        log.warning("training.run_failed", job_id=job.id, error=message, exit_code=exit_code)
        await service.fail(self.deps.db, job.tenant, job.id, error=message, exit_code=exit_code)
        return TrainingOutcome(job_id=job.id, state="failed", error=message)

    def _layout(self, job: TrainingJob) -> JobLayout:
        return JobLayout(self.deps.store.bucket, job.tenant, job.id)


@contextlib.contextmanager
def _gone_is_final() -> Iterator[None]:
    """Ending a job that does not exist (its creation was rolled back) cannot succeed on a retry."""
    try:
        yield
    except NotFound as missing:
        raise ApplicationError(str(missing), type="JobNotFound", non_retryable=True) from None


def _ended(job: TrainingJob) -> TrainingOutcome:
    """The outcome of a job that is not running: one that ended already (a retry after the end)."""
    if job.state not in ("succeeded", "failed", "cancelled"):
        raise ApplicationError(f"training job in state {job.state!r} cannot run", non_retryable=True)
    return TrainingOutcome(
        job_id=job.id,
        state=job.state,  # type: ignore[arg-type]
        model_uri=job.model_uri,
        adapter_uri=job.adapter_uri,
        steps=job.total_steps,
        error=job.error,
    )


class EvaluationActivities:
    """The evaluation activities, bound to the service's dependencies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def all(self) -> list[Callable[..., Any]]:
        return [self.run_evaluation, self.fail_evaluation, self.cancel_evaluation]

    @activity.defn(name=FAIL_EVALUATION)
    async def fail_evaluation(self, request: FailJob) -> JobStatus:
        """Active -> failed with the error (no-op on an ended evaluation)."""
        with _gone_is_final():
            await service.fail_evaluation(
                self.deps.db, request.tenant_id, request.job_id, error=request.error
            )
            job = await service.evaluation(self.deps.db, request.tenant_id, request.job_id)
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=CANCEL_EVALUATION)
    async def cancel_evaluation(self, ref: JobRef) -> JobStatus:
        """Active -> cancelled (no-op on an ended evaluation)."""
        with _gone_is_final():
            await service.cancel_evaluation(self.deps.db, ref.tenant_id, ref.job_id)
            job = await service.evaluation(self.deps.db, ref.tenant_id, ref.job_id)
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=RUN_EVALUATION)
    async def run_evaluation(self, request: EvaluationRequest) -> EvaluationResult:
        """Find or create the evaluation (by id, else by `request_key`), run it and return its result;
        one that already succeeded returns its stored result without running again. A failed run
        ends the evaluation `failed` and raises a non-retryable ApplicationError with the reason."""
        job = await self._find_or_create(request)
        if job.state == "succeeded":
            return _evaluation_result(job)
        job = await service.begin_evaluation(self.deps.db, job.tenant, job.id)
        if job.state != "running":
            return _ended_evaluation(job)
        progress: dict[str, Any] = {"evaluation_job_id": job.id, "phase": job.phase, "attempt": job.attempt}
        interval_s = heartbeat_interval_s(self.deps.settings.heartbeat_timeout_s)
        async with heartbeating(lambda: dict(progress), interval_s):
            with tempfile.TemporaryDirectory(
                prefix=f"evaluation-{job.id}-", dir=self.deps.settings.work_dir
            ) as work_dir:
                return await self._evaluate(job, Path(work_dir), progress)

    async def _find_or_create(self, request: EvaluationRequest) -> EvaluationJob:
        """The evaluation to run. One named by id was recorded by the API in the transaction that started
        its workflow: not found yet means not committed yet, so the activity is retried. Otherwise the
        request is validated like the API's body and its model and test file must be the tenant's own (its
        training outputs, its dataset files): a caller's URI is never read with another tenant's reach."""
        db, tenant = self.deps.db, request.tenant_id
        if request.evaluation_job_id is not None:
            return await service.evaluation(db, tenant, request.evaluation_job_id)
        try:
            settings = EvaluationSettings.model_validate(
                {
                    "data_format": request.data_format,
                    "max_new_tokens": request.max_new_tokens,
                    "max_records": request.max_records,
                    "thresholds": None
                    if request.thresholds is None
                    else {name: bound.model_dump() for name, bound in request.thresholds.items()},
                }
            )
            check_own_model(request.model_uri, tenant, self.deps.store.bucket)
            check_own_dataset_file(request.test_bucket, request.test_key, tenant)
        except ValidationError as invalid:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
                for issue in invalid.errors()
            )
            raise ApplicationError(
                f"invalid evaluation request: {problems}", type="InvalidEvaluationRequest", non_retryable=True
            ) from None
        except (ForeignObject, InvalidUri) as foreign:
            raise ApplicationError(
                f"invalid evaluation request: {foreign}", type="InvalidEvaluationRequest", non_retryable=True
            ) from None
        inputs = service.EvaluationInputs(
            model_uri=request.model_uri,
            test_bucket=request.test_bucket,
            test_key=request.test_key,
            model_version_id=request.model_version_id,
            training_job_id=request.training_job_id,
            dataset_version_id=request.dataset_version_id,
        )
        return await service.create_evaluation(
            db, tenant, None, inputs, settings, request_key=request.request_key
        )

    async def _evaluate(
        self, job: EvaluationJob, work_dir: Path, progress: dict[str, Any]
    ) -> EvaluationResult:
        store, settings = self.deps.store, self.deps.settings
        paths = EvaluationPaths.under(work_dir)
        try:
            await store.download_prefix(parse_s3_uri(job.model_uri), paths.model_dir)
            await store.download_file(ObjectLocation(job.test_bucket, job.test_key), paths.test_file)
        except MissingObject as missing:
            raise await self._fail(job, f"input missing: {missing}", exit_code=None) from None
        await self._phase(job, progress, "evaluating")
        spec = evaluate_spec(
            paths=paths,
            data_format=job.data_format,
            max_new_tokens=job.max_new_tokens,
            max_records=job.max_records,
            threads=settings.runtime_threads,
        )

        async def started(process: RuntimeProcess) -> None:
            log.info(
                "training.evaluation_started", evaluation_id=job.id, pid=process.pid, attempt=job.attempt
            )

        run = await run_runtime(RUNTIME_MODULE, "evaluate", spec, work_dir, on_start=started)
        if not run.succeeded or run.result is None or not paths.records_file.exists():
            message = error_message(run.error, run.stderr_tail, run.exit_code)
            raise await self._fail(job, message, exit_code=run.exit_code)
        await self._phase(job, progress, "uploading")
        records = await asyncio.to_thread(_read_records, paths.records_file)
        metrics = evaluation_metrics(run.result)
        layout = EvaluationLayout(store.bucket, job.tenant, job.id)
        report = _report(job, metrics, records=len(records), records_uri=layout.records.uri)
        paths.report_file.write_text(json.dumps(report, indent=2), encoding="utf-8")
        await store.ensure_bucket()
        await store.upload_file(paths.records_file, layout.records)
        await store.upload_file(paths.report_file, layout.report)
        ended = await service.succeed_evaluation(
            self.deps.db,
            job.tenant,
            job.id,
            metrics=metrics,
            records=records,
            records_uri=layout.records.uri,
            report_uri=layout.report.uri,
        )
        if ended.state != "succeeded":
            return _ended_evaluation(ended)
        return _evaluation_result(ended)

    async def _phase(self, job: EvaluationJob, progress: dict[str, Any], phase: str) -> None:
        progress["phase"] = phase
        activity.heartbeat(dict(progress))
        await service.record_evaluation_phase(self.deps.db, job.id, phase)

    async def _fail(self, job: EvaluationJob, message: str, exit_code: int | None) -> ApplicationError:
        log.warning("training.evaluation_failed", evaluation_id=job.id, error=message, exit_code=exit_code)
        await service.fail_evaluation(self.deps.db, job.tenant, job.id, error=message, exit_code=exit_code)
        return ApplicationError(message, type="EvaluationFailed", non_retryable=True)


def _evaluation_result(job: EvaluationJob) -> EvaluationResult:
    assert job.records_uri is not None and job.report_uri is not None
    return EvaluationResult(
        evaluation_job_id=job.id,
        metrics={name: float(value) for name, value in job.metrics.items()},
        records_uri=job.records_uri,
        report_uri=job.report_uri,
        passed=job.passed,
        failed_checks=list(job.failed_checks),
    )


def _ended_evaluation(job: EvaluationJob) -> EvaluationResult:
    """The result of an evaluation that is not running: its stored one, or the reason it has none."""
    if job.state == "succeeded":
        return _evaluation_result(job)
    reason = f": {job.error}" if job.error else ""
    raise ApplicationError(
        f"evaluation job {job.id} is {job.state}{reason}", type="EvaluationEnded", non_retryable=True
    )


def _read_records(path: Path) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                records.append(
                    {key: str(record.get(key, "")) for key in ("prompt", "reference", "prediction")}
                )
    return records


def _report(
    job: EvaluationJob, metrics: dict[str, float], *, records: int, records_uri: str
) -> dict[str, Any]:
    """The evaluation report (EV-4): what was evaluated, how, the metrics, the verdict against the
    thresholds it was given (none: no verdict) and the counts."""
    passed, failed_checks = judge(metrics, job.thresholds) if job.thresholds is not None else (None, [])
    return {
        "evaluation_job_id": job.id,
        "tenant": job.tenant,
        "model": {
            "uri": job.model_uri,
            "model_version_id": job.model_version_id,
            "training_job_id": job.training_job_id,
            "base_model_id": job.base_model_id,
        },
        "test_set": {
            "uri": f"s3://{job.test_bucket}/{job.test_key}",
            "dataset_id": job.dataset_id,
            "dataset_version_id": job.dataset_version_id,
            "file": job.test_file,
        },
        "config": {
            "mode": "automatic",
            "data_format": job.data_format,
            "max_new_tokens": job.max_new_tokens,
            "max_records": job.max_records,
            "decoding": "greedy",
        },
        "metrics": metrics,
        "thresholds": job.thresholds,
        "passed": passed,
        "failed_checks": failed_checks,
        "counts": {"records": records},
        "records_uri": records_uri,
        "attempt": job.attempt,
        "started_at": job.started_at.isoformat() if job.started_at else None,
    }
