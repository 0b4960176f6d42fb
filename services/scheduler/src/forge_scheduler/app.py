"""Composition root of the scheduler: runtime (database, outbox relay, Temporal worker with the
scheduler's activities), the local compute backend, and the HTTP app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI
from forge_contracts.envelope import topic_for
from forge_kit.observability import logger
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from forge_scheduler import api
from forge_scheduler.activities import SchedulerActivities
from forge_scheduler.audit import api as audit_api
from forge_scheduler.audit.service import expire, on_audit_event
from forge_scheduler.backends import LocalBackend
from forge_scheduler.service import Scheduler
from forge_scheduler.tenancy import api as tenancy_api
from forge_scheduler.tenancy.service import LocalDirectory

SERVICE = "scheduler"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
JOBS_DIR_ENV = "FORGE_SCHEDULER_JOBS_DIR"
AUDIT_TOPIC = topic_for("audit")


def default_jobs_dir() -> Path:
    """Where local jobs' folders and logs go: `$FORGE_SCHEDULER_JOBS_DIR`, else `.forge/scheduler/jobs`."""
    return Path(os.environ.get(JOBS_DIR_ENV) or Path.cwd() / ".forge" / "scheduler" / "jobs")


class SchedulerRuntime(ServiceRuntime):
    """The kit's runtime plus the scheduler's state: local jobs are stopped (and their allocations
    released) before the database, broker and worker stop."""

    def __init__(self, settings: ServiceSettings, *, jobs_dir: Path | None = None) -> None:
        # The scheduler owns the directory: it reads its callers' memberships from its own tables,
        # unless told to use another directory (tests share one across services).
        local = LocalDirectory() if settings.directory_url is None else None
        super().__init__(settings, migrations=MIGRATIONS, directory=local)
        if local is not None:
            local.db = self.db
        jobs = (jobs_dir or default_jobs_dir()).resolve()
        jobs.mkdir(parents=True, exist_ok=True)
        self.scheduler = Scheduler(self.db, LocalBackend(), jobs)
        self.register(activities=SchedulerActivities(self.scheduler).all())
        self.audit = AuditSettings()
        if self.audit.consumer:
            self.subscribe(
                topics=[AUDIT_TOPIC],
                consumer=self.audit.group,
                handler=on_audit_event,
                start=self.audit.start,
            )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        async with super().running():
            expiry = (
                asyncio.create_task(self._expire_audit(), name="audit-expiry")
                if self.audit.consumer
                else None
            )
            try:
                yield self
            finally:
                if expiry is not None:
                    expiry.cancel()
                await self.scheduler.close()

    async def _expire_audit(self) -> None:
        log = logger(component="audit")
        while True:
            try:
                removed = await expire(self.db, self.audit.retention_days)
                if removed:
                    log.info("audit.expired", entries=removed, retention_days=self.audit.retention_days)
            except Exception as error:  # try again next round; the trail only grows meanwhile
                log.warning("audit.expiry_failed", error=repr(error))
            await asyncio.sleep(self.audit.expiry_interval_s)


class AuditSettings(BaseSettings):
    """Whether this scheduler keeps the audit trail (one deployment does), under which consumer group,
    and for how long (FORGE_AUDIT_*)."""

    model_config = SettingsConfigDict(env_prefix="FORGE_AUDIT_", extra="ignore")

    consumer: bool = True
    group: str = "forge-scheduler.audit"
    start: Literal["earliest", "latest"] = "earliest"
    retention_days: int = Field(default=365, ge=1, le=36500)
    expiry_interval_s: float = Field(default=3600.0, gt=0)


def build_runtime(settings: ServiceSettings, *, jobs_dir: Path | None = None) -> SchedulerRuntime:
    return SchedulerRuntime(settings, jobs_dir=jobs_dir)


def create_app(settings: ServiceSettings | None = None, *, jobs_dir: Path | None = None) -> FastAPI:
    runtime = build_runtime(settings or ServiceSettings.for_service(SERVICE), jobs_dir=jobs_dir)
    return app_for(runtime)


def app_for(runtime: SchedulerRuntime) -> FastAPI:
    """The HTTP app of an already built runtime (tests register extra workflows before this)."""
    app = runtime.http_app(routers=[api.router, tenancy_api.router, audit_api.router])
    app.state.scheduler = runtime.scheduler
    return app


def main() -> None:
    settings = ServiceSettings.for_service(SERVICE)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
