"""Composition root of the delivery service."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI
from forge_kit.settings import ServiceSettings

from forge_delivery import api
from forge_delivery.activities import DeliveryActivities
from forge_delivery.runtime import DeliveryRuntime
from forge_delivery.settings import DeliverySettings
from forge_delivery.workflows import CheckVersionWorkflow

SERVICE = "delivery"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_runtime(settings: ServiceSettings) -> DeliveryRuntime:
    """The service with its workflow and activities registered (HTTP routes are added by `create_app`)."""
    runtime = DeliveryRuntime(DeliverySettings.of(settings), migrations=MIGRATIONS)
    runtime.register(
        workflows=[CheckVersionWorkflow], activities=[DeliveryActivities(runtime.context).deliver_model]
    )
    return runtime


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    runtime = build_runtime(settings or DeliverySettings.for_service(SERVICE))
    return runtime.http_app(routers=[api.router])


def main() -> None:
    settings = DeliverySettings.for_service(SERVICE)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
