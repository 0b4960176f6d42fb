"""Training jobs through the SDK (the training service's `/training-jobs`): submit one from a config, read
its progress, metrics and logs, cancel it, and follow it to its end.

    jobs = forge.jobs
    job = jobs.create(yaml.safe_load(Path("lora.yaml").read_text()))
    done = jobs.follow(job["id"], on_progress=lambda j: print(j["progress"]), on_log=print)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NotRequired, TypedDict

from forge_sdk.client import Service

JOB_ENDED = frozenset({"succeeded", "failed", "cancelled"})
"""The states a training job ends in (the `training_job` state machine's terminal states)."""
LOG_PAGE = 1000
"""Log lines read per request while following."""


class JobProgress(TypedDict):
    step: int
    total_steps: int | None
    percent: float | None
    eta_s: float | None


class JobOutputs(TypedDict):
    model_uri: str | None
    adapter_uri: str | None
    last_checkpoint_uri: str | None
    last_checkpoint_step: int | None


class TrainingJob(TypedDict):
    """A training job as `GET /training-jobs/{id}` shows it (the fields the CLI reads; the API sends more)."""

    id: str
    name: str
    state: str
    progress: JobProgress
    latest_metrics: dict[str, Any]
    outputs: JobOutputs
    error: str | None
    exit_code: int | None
    attempt: int
    base_model_id: str | None
    dataset_id: str | None
    dataset_version_id: str
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    scheduler_project_id: NotRequired[str | None]
    allocation_id: NotRequired[str | None]


class LogLine(TypedDict):
    seq: int
    level: str
    message: str
    logged_at: str


class LogsPage(TypedDict):
    job_id: str
    lines: list[LogLine]
    next_after: int
    """Pass as `after` to read only newer lines."""


class MetricPoint(TypedDict):
    step: int
    value: float | None


class MetricSeries(TypedDict):
    name: str
    points: list[MetricPoint]


class JobFailed(RuntimeError):
    """A training job ended without succeeding (failed or cancelled); the job as last seen in `job`."""

    def __init__(self, job: TrainingJob) -> None:
        super().__init__(f"training job {job['id']} {job['state']}: {job.get('error') or ''}".rstrip(": "))
        self.job = job


class Jobs:
    """The training service's jobs, as the signed-in caller's tenant sees them."""

    def __init__(self, api: Service) -> None:
        self.api = api

    def list(self, *, state: str | None = None, page_size: int = 100) -> Iterator[TrainingJob]:
        """The tenant's jobs, newest first, page by page, optionally only those in `state`. (The service
        answers one page of the newest `page_size`, at most 500, until it pages by offset.)"""
        params = {"state": state} if state else None
        yield from self.api.pages("/training-jobs", params=params, limit=min(page_size, 500))

    def get(self, job_id: str) -> TrainingJob:
        found: TrainingJob = self.api.get(f"/training-jobs/{job_id}")
        return found

    def create(self, config: Mapping[str, Any]) -> TrainingJob:
        """Submit a job: `config` is the body of `POST /training-jobs` (name, project_id, base_model,
        dataset, hyperparameters, lora, resources, ...; docs/training.md), e.g. a JSON or YAML file's."""
        created: TrainingJob = self.api.post("/training-jobs", json=dict(config))
        return created

    def cancel(self, job_id: str, reason: str | None = None) -> TrainingJob:
        """Stop a job (ApiError 409 when it already ended); it ends `cancelled` once its run is killed."""
        body = {"reason": reason} if reason else None
        cancelled: TrainingJob = self.api.post(f"/training-jobs/{job_id}/cancel", json=body, idempotent=True)
        return cancelled

    def logs(self, job_id: str, *, tail: int = 200, after: int | None = None) -> LogsPage:
        """The last `tail` lines, or (with `after`) the lines after that sequence number."""
        params: dict[str, int] = {"tail": tail}
        if after is not None:
            params["after"] = after
        page: LogsPage = self.api.get(f"/training-jobs/{job_id}/logs", params=params)
        return page

    def metrics(self, job_id: str, name: str | None = None) -> builtins.list[MetricSeries]:
        """The metric series by step (`train_loss`, `learning_rate`, `eval_loss`); `name` picks one."""
        params = {"name": name} if name else None
        found = self.api.get(f"/training-jobs/{job_id}/metrics", params=params)
        series: builtins.list[MetricSeries] = found["series"]
        return series

    def follow(
        self,
        job_id: str,
        *,
        on_progress: Callable[[TrainingJob], None] | None = None,
        on_log: Callable[[LogLine], None] | None = None,
        tail: int = 200,
        interval_s: float = 1.0,
    ) -> TrainingJob:
        """Poll a job until it ends: `on_progress(job)` on every poll and, when given, `on_log(line)` for
        each new log line (from the last `tail` ones on). JobFailed unless it succeeded."""
        after: int | None = None
        while True:
            job = self.get(job_id)
            if on_log is not None:
                after = self._new_lines(job_id, after, tail, on_log)
            if on_progress is not None:
                on_progress(job)
            if job["state"] in JOB_ENDED:
                break
            time.sleep(interval_s)
        if on_log is not None:  # lines written between the last read and the end
            self._new_lines(job_id, after, tail, on_log)
        if job["state"] != "succeeded":
            raise JobFailed(job)
        return job

    def _new_lines(self, job_id: str, after: int | None, tail: int, on_log: Callable[[LogLine], None]) -> int:
        """Hand every line after `after` (the last `tail` when None) to `on_log`; the last seq seen."""
        page = self.logs(job_id, tail=tail if after is None else LOG_PAGE, after=after)
        while True:
            for line in page["lines"]:
                on_log(line)
            if after is None or len(page["lines"]) < LOG_PAGE:
                return page["next_after"]
            after = page["next_after"]
            page = self.logs(job_id, tail=LOG_PAGE, after=after)


__all__ = ["JOB_ENDED", "JobFailed", "Jobs", "LogLine", "LogsPage", "MetricSeries", "TrainingJob"]
