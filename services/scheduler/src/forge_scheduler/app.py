"""Composition root of the scheduler: runtime (database, outbox relay, Temporal worker with the
scheduler's activities), the local compute backend, and the HTTP app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings

from forge_scheduler import api
from forge_scheduler.activities import SchedulerActivities
from forge_scheduler.backends import LocalBackend
from forge_scheduler.service import Scheduler

SERVICE = "scheduler"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
JOBS_DIR_ENV = "FORGE_SCHEDULER_JOBS_DIR"


def default_jobs_dir() -> Path:
    """Where local jobs' folders and logs go: `$FORGE_SCHEDULER_JOBS_DIR`, else `.forge/scheduler/jobs`."""
    return Path(os.environ.get(JOBS_DIR_ENV) or Path.cwd() / ".forge" / "scheduler" / "jobs")


class SchedulerRuntime(ServiceRuntime):
    """The kit's runtime plus the scheduler's state: local jobs are stopped (and their allocations
    released) before the database, broker and worker stop."""

    def __init__(self, settings: ServiceSettings, *, jobs_dir: Path | None = None) -> None:
        super().__init__(settings, migrations=MIGRATIONS)
        jobs = (jobs_dir or default_jobs_dir()).resolve()
        jobs.mkdir(parents=True, exist_ok=True)
        self.scheduler = Scheduler(self.db, LocalBackend(), jobs)
        self.register(activities=SchedulerActivities(self.scheduler).all())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        async with super().running():
            try:
                yield self
            finally:
                await self.scheduler.close()


def build_runtime(settings: ServiceSettings, *, jobs_dir: Path | None = None) -> SchedulerRuntime:
    return SchedulerRuntime(settings, jobs_dir=jobs_dir)


def create_app(settings: ServiceSettings | None = None, *, jobs_dir: Path | None = None) -> FastAPI:
    runtime = build_runtime(settings or ServiceSettings.for_service(SERVICE), jobs_dir=jobs_dir)
    return app_for(runtime)


def app_for(runtime: SchedulerRuntime) -> FastAPI:
    """The HTTP app of an already built runtime (tests register extra workflows before this)."""
    app = runtime.http_app(routers=[api.router])
    app.state.scheduler = runtime.scheduler
    return app


def main() -> None:
    settings = ServiceSettings.for_service(SERVICE)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
