"""Composition root of the registry service: runtime (database, outbox relay, Temporal worker with the
registry's activities), report store and HTTP app."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings

from forge_registry import api
from forge_registry.activities import RegistryActivities
from forge_registry.reports import ReportStore

SERVICE = "registry"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_runtime(settings: ServiceSettings, reports: ReportStore | None = None) -> ServiceRuntime:
    """The registry's runtime with its activities registered on its task queue."""
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    runtime.register(
        activities=RegistryActivities(
            runtime.db, reports or ReportStore(settings), settings.model_areas
        ).all()
    )
    return runtime


def create_app(settings: ServiceSettings | None = None, *, reports_bucket: str | None = None) -> FastAPI:
    """The registry's HTTP app; its lifespan runs the whole service. Evaluation reports the registry writes
    itself go to `reports_bucket` (default: $FORGE_REGISTRY_REPORTS_BUCKET, else forge-registry-reports)."""
    settings = settings or ServiceSettings.for_service(SERVICE)
    reports = ReportStore(settings, reports_bucket)
    app: FastAPI = build_runtime(settings, reports).http_app(routers=[api.router])
    app.state.reports = reports
    return app


def main() -> None:
    settings = ServiceSettings.for_service(SERVICE)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
