"""Composition root of the registry service: runtime (database, outbox relay, Temporal worker with the
registry's activities), report store and HTTP app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI
from forge_contracts.envelope import topic_for
from forge_kit.runtime import ServiceRuntime
from forge_kit.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from forge_registry import api
from forge_registry.activities import RegistryActivities
from forge_registry.lineage import api as lineage_api
from forge_registry.lineage.service import OpenLineageRelay, on_event
from forge_registry.reports import ReportStore

SERVICE = "registry"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
LINEAGE_SOURCES = ("dataset", "labeling", "training", "registry", "delivery")


class LineageSettings(BaseSettings):
    """Whether this registry builds the lineage graph (one deployment does), from where in the topics, and
    where its OpenLineage events go (FORGE_LINEAGE_*)."""

    model_config = SettingsConfigDict(env_prefix="FORGE_LINEAGE_", extra="ignore")

    consumer: bool = True
    group: str = "forge-registry.lineage"
    start: Literal["earliest", "latest"] = "earliest"
    openlineage_topic: str | None = Field(
        default="forge.openlineage", description="Kafka topic for OpenLineage run events; empty: none."
    )
    openlineage_url: str | None = Field(
        default=None,
        description="An OpenLineage HTTP endpoint (Marquez: http://marquez:5000/api/v1/lineage).",
    )


class RegistryRuntime(ServiceRuntime):
    """The kit's runtime plus the lineage graph: its consumer of every service's events and the relay of
    its OpenLineage events."""

    def __init__(self, settings: ServiceSettings, reports: ReportStore) -> None:
        super().__init__(settings, migrations=MIGRATIONS)
        self.register(activities=RegistryActivities(self.db, reports, settings.model_areas).all())
        self.lineage = LineageSettings()
        self.openlineage: OpenLineageRelay | None = None
        if self.lineage.consumer:
            self.subscribe(
                topics=[topic_for(name) for name in LINEAGE_SOURCES],
                consumer=self.lineage.group,
                handler=on_event,
                start=self.lineage.start,
            )
            self.openlineage = OpenLineageRelay(
                self.db,
                self.broker,
                topic=self.lineage.openlineage_topic or None,
                url=self.lineage.openlineage_url or None,
            )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        async with super().running():
            relay = self._spawn(self.openlineage.run(), "openlineage") if self.openlineage else None
            try:
                yield self
            finally:
                if relay is not None and self.openlineage is not None:
                    await self._stop_task(self.openlineage.stop, relay)


def build_runtime(settings: ServiceSettings, reports: ReportStore | None = None) -> RegistryRuntime:
    """The registry's runtime with its activities registered on its task queue."""
    return RegistryRuntime(settings, reports or ReportStore(settings))


def create_app(settings: ServiceSettings | None = None, *, reports_bucket: str | None = None) -> FastAPI:
    """The registry's HTTP app; its lifespan runs the whole service. Evaluation reports the registry writes
    itself go to `reports_bucket` (default: $FORGE_REGISTRY_REPORTS_BUCKET, else forge-registry-reports)."""
    settings = settings or ServiceSettings.for_service(SERVICE)
    reports = ReportStore(settings, reports_bucket)
    app: FastAPI = build_runtime(settings, reports).http_app(routers=[api.router, lineage_api.router])
    app.state.reports = reports
    return app


def main() -> None:
    settings = ServiceSettings.for_service(SERVICE)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
