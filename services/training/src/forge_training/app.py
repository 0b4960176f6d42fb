"""Composition root of the training service: runtime (database, outbox relay, Temporal worker with the
training, evaluation, input-resolution and chain workflows and activities), object storage and the HTTP
app."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings

from forge_training import api, chain_api
from forge_training.activities import EvaluationActivities, TrainingActivities
from forge_training.chain import ModelChainWorkflow
from forge_training.chain_activities import ChainActivities
from forge_training.service import Deps
from forge_training.settings import TrainingSettings
from forge_training.storage import ObjectStore
from forge_training.workflows import EvaluationJobWorkflow, ResolveInputsWorkflow, TrainingJobWorkflow

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    """The runtime with the job workflow and the training activities on its task queue."""
    return _assemble(settings)[0]


def _assemble(settings: ServiceSettings) -> tuple[ServiceRuntime, Deps]:
    training = TrainingSettings.from_service_settings(settings)
    runtime = ServiceRuntime(training, migrations=MIGRATIONS)
    deps = Deps(runtime=runtime, settings=training, store=ObjectStore(training))
    runtime.register(
        workflows=[TrainingJobWorkflow, EvaluationJobWorkflow, ModelChainWorkflow, ResolveInputsWorkflow],
        activities=TrainingActivities(deps).all()
        + EvaluationActivities(deps).all()
        + ChainActivities(runtime.db).all(),
    )
    return runtime, deps


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The training service's app (settings from the stack env file when none are given); the use
    cases' dependencies are on `app.state.deps`."""
    runtime, deps = _assemble(settings or TrainingSettings.for_service("training"))
    app = runtime.http_app(routers=[api.router, api.evaluation_router, chain_api.router])
    app.state.deps = deps
    return app


def main() -> None:
    settings = TrainingSettings.for_service("training")
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
