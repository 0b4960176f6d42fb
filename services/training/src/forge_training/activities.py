"""Temporal activities of the training service (task queue `forge-training`), names and models from
`forge_contracts.activities.training`.

`run_training` is the long one: it downloads the job's inputs, runs the training runtime as a child
process, stores what it reports (progress, metrics, logs), uploads every checkpoint as it appears and
the adapter and merged model at the end, and heartbeats throughout. A retry (this worker or another,
after a crash) resumes from the newest uploaded checkpoint. Cancelling the activity kills the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_contracts.activities.training import (
    CANCEL_JOB,
    FAIL_JOB,
    QUEUE_JOB,
    RUN_TRAINING,
    FailJob,
    JobRef,
    JobStatus,
    TrainingOutcome,
    TrainingProgress,
)
from forge_kit.observability import logger
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_training import service
from forge_training.domain import JobLayout, RunPaths, error_message, parse_s3_uri, runtime_spec
from forge_training.runtime_process import RuntimeProcess
from forge_training.service import Deps, ProgressBatch, RunStart
from forge_training.storage import MissingObject
from forge_training.tables import TrainingJob

log = logger(component="training.activities")


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


class TrainingActivities:
    """The activities, bound to the service's dependencies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def all(self) -> list[Callable[..., Any]]:
        return [self.queue_job, self.run_training, self.fail_job, self.cancel_job]

    @activity.defn(name=QUEUE_JOB)
    async def queue_job(self, ref: JobRef) -> JobStatus:
        """pending -> queued (idempotent)."""
        job = await service.enqueue(self.deps.db, ref.tenant_id, ref.job_id)
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=FAIL_JOB)
    async def fail_job(self, request: FailJob) -> JobStatus:
        """Active -> failed with the error (no-op on an ended job)."""
        await service.fail(self.deps.db, request.tenant_id, request.job_id, error=request.error)
        job = await service.job(self.deps.db, request.tenant_id, request.job_id)
        return JobStatus(job_id=job.id, state=job.state)  # type: ignore[arg-type]

    @activity.defn(name=CANCEL_JOB)
    async def cancel_job(self, ref: JobRef) -> JobStatus:
        """Active -> cancelled (no-op on an ended job)."""
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
        heartbeats = asyncio.create_task(self._heartbeat(recorder), name=f"heartbeat:{ref.job_id}")
        try:
            with tempfile.TemporaryDirectory(
                prefix=f"training-{ref.job_id}-", dir=self.deps.settings.work_dir
            ) as work_dir:
                return await self._run(start, Path(work_dir), recorder)
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats

    async def _heartbeat(self, recorder: ProgressRecorder) -> None:
        """Heartbeat the latest progress even while the runtime is silent (imports, downloads)."""
        interval_s = min(5.0, max(0.2, self.deps.settings.heartbeat_timeout_s / 4))
        while True:
            activity.heartbeat(recorder.progress.model_dump())
            await asyncio.sleep(interval_s)

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
        spec_file = work_dir / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        process = RuntimeProcess("train", spec_file, work_dir / "runtime.stderr")
        try:
            await process.start()
            recorder.log(f"training runtime started (pid {process.pid}, attempt {job.attempt})")
            await recorder.flush()
            result, runtime_error = await self._follow(job, process, paths, recorder)
            exit_code = await process.wait()
        finally:
            await process.stop()  # on cancellation or any error: the runtime must not outlive the run
        await recorder.flush()
        if exit_code != 0 or result is None:
            message = error_message(runtime_error, process.stderr_tail(), exit_code)
            return await self._fail(job, message, exit_code=exit_code)
        return await self._succeed(job, paths, result, recorder)

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

    async def _follow(
        self, job: TrainingJob, process: RuntimeProcess, paths: RunPaths, recorder: ProgressRecorder
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Store each event as it comes; upload each checkpoint; returns (result, error) lines."""
        layout = self._layout(job)
        result: dict[str, Any] | None = None
        runtime_error: dict[str, Any] | None = None
        async for event in process.events():
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
            elif kind == "result":
                result = event.get("result") or {}
            elif kind == "error":
                runtime_error = event
                recorder.log(error_message(event, "", None), "error")
            await recorder.maybe_flush()
        return result, runtime_error

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
