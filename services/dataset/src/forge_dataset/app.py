"""Composition root of the dataset service: runtime (database, outbox relay, Temporal worker with the
dataset activities), the dataset bucket and the HTTP app."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings

from forge_dataset import api
from forge_dataset.activities import DatasetActivities
from forge_dataset.aliases import api as aliases_api
from forge_dataset.objects import ObjectStore
from forge_dataset.service import Deps
from forge_dataset.settings import DatasetSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build(settings: ServiceSettings) -> tuple[ServiceRuntime, Deps]:
    """The runtime, with the dataset activities registered on its task queue, and what use cases need."""
    dataset_settings = DatasetSettings.from_service_settings(settings)
    runtime = ServiceRuntime(dataset_settings, migrations=MIGRATIONS)
    deps = Deps(
        db=runtime.db,
        store=ObjectStore(dataset_settings),
        inline_task_max_bytes=dataset_settings.inline_task_max_bytes,
    )
    runtime.register(activities=DatasetActivities(deps).all())
    return runtime, deps


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    """The service runtime (database, relay, Temporal worker with the dataset activities)."""
    return build(settings)[0]


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The dataset service's app (settings from the stack env file when none are given)."""
    runtime, deps = build(settings or DatasetSettings.for_service("dataset"))
    app = runtime.http_app(routers=[api.router, aliases_api.router])
    app.state.deps = deps
    return app


def main() -> None:
    settings = DatasetSettings.for_service("dataset")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
