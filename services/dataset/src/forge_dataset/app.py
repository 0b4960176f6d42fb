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
from forge_dataset.archives import service as archives_service
from forge_dataset.connections import api as connections_api
from forge_dataset.connections.crypto import SecretBox
from forge_dataset.convert import api as convert_api
from forge_dataset.convert import service as convert_service
from forge_dataset.deps import Deps
from forge_dataset.diff import api as diff_api
from forge_dataset.diff import service as diff_service
from forge_dataset.features import api as features_api
from forge_dataset.features import service as features_service
from forge_dataset.imports import api as imports_api
from forge_dataset.imports import service as imports_service
from forge_dataset.media import api as media_api
from forge_dataset.objects import ObjectStore
from forge_dataset.processing import api as processing_api
from forge_dataset.processing import service as processing_service
from forge_dataset.settings import DatasetSettings
from forge_dataset.sharing import api as sharing_api
from forge_dataset.split import service as split_service
from forge_dataset.statistics import api as statistics_api
from forge_dataset.tasks import api as tasks_api
from forge_dataset.tasks.runner import Handler, TaskActivities
from forge_dataset.tasks.workflow import DatasetProcessWorkflow, DatasetTaskWorkflow
from forge_dataset.uploads import api as uploads_api

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build(settings: ServiceSettings) -> tuple[ServiceRuntime, Deps]:
    """The runtime, with the dataset activities registered on its task queue, and what use cases need."""
    dataset_settings = DatasetSettings.from_service_settings(settings)
    runtime = ServiceRuntime(dataset_settings, migrations=MIGRATIONS)
    deps = Deps(
        runtime=runtime,
        store=ObjectStore(dataset_settings),
        work_dir=dataset_settings.work_dir,
        import_allowed_networks=tuple(dataset_settings.import_allowed_networks),
        import_max_file_bytes=dataset_settings.import_max_file_bytes,
        secrets=SecretBox(dataset_settings.dataset_connections_key.get_secret_value()),
        sql_import_timeout_s=dataset_settings.sql_import_timeout_s,
        ray_address=dataset_settings.ray_address,
        processing_link_ttl_s=dataset_settings.processing_link_ttl_s,
        processing_shard_bytes=dataset_settings.processing_shard_bytes,
        registry_task_queue=dataset_settings.registry_task_queue,
        model_areas=tuple(dataset_settings.model_areas),
    )
    handlers: dict[str, Handler] = {
        "diff": diff_service.run_diff,
        "split": split_service.run_split,
        "import": imports_service.run_import,
        "expand": archives_service.run_expand,
        "convert": convert_service.run_convert,
        "process": processing_service.run_process,
        "features": features_service.run_features,
    }
    runtime.register(
        workflows=[DatasetTaskWorkflow, DatasetProcessWorkflow],
        activities=[*DatasetActivities(deps).all(), *TaskActivities(deps, handlers).all()],
    )
    return runtime, deps


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    """The service runtime (database, relay, Temporal worker with the dataset activities)."""
    return build(settings)[0]


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The dataset service's app (settings from the stack env file when none are given)."""
    runtime, deps = build(settings or DatasetSettings.for_service("dataset"))
    app = runtime.http_app(
        routers=[
            uploads_api.router,  # before api.router, whose POST .../{transition} would take /uploads
            convert_api.router,  # and /convert
            processing_api.router,  # and /process
            features_api.router,  # and /features
            api.router,
            aliases_api.router,
            tasks_api.router,
            diff_api.router,
            statistics_api.router,
            imports_api.router,
            connections_api.router,
            sharing_api.router,
            media_api.router,
        ]
    )
    app.state.deps = deps
    return app


def main() -> None:
    settings = DatasetSettings.for_service("dataset")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
