"""Composition root of the labeling service: runtime (database, outbox relay, Temporal worker with the
labeling workflows and activities), the object store and the HTTP app."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings

from forge_labeling import api
from forge_labeling.activities import LabelingActivities
from forge_labeling.objects import ObjectStore
from forge_labeling.service import Deps
from forge_labeling.settings import LabelingSettings
from forge_labeling.workflows import ExportWorkflow, ImportRecordsWorkflow

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build(settings: ServiceSettings) -> tuple[ServiceRuntime, Deps]:
    """The runtime, with the labeling workflows and activities on its task queue, and what use cases need."""
    labeling = LabelingSettings.from_service_settings(settings)
    runtime = ServiceRuntime(labeling, migrations=MIGRATIONS)
    deps = Deps(runtime=runtime, settings=labeling, store=ObjectStore(labeling))
    runtime.register(
        workflows=[ImportRecordsWorkflow, ExportWorkflow], activities=LabelingActivities(deps).all()
    )
    return runtime, deps


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    """The service runtime (database, relay, Temporal worker with the labeling workflows/activities)."""
    return build(settings)[0]


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The labeling service's app (settings from the stack env file when none are given)."""
    runtime, deps = build(settings or LabelingSettings.for_service("labeling"))
    app = runtime.http_app(routers=[api.router])
    app.state.deps = deps
    return app


def main() -> None:
    settings = LabelingSettings.for_service("labeling")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
