"""The delivery service's runtime: the kit's ServiceRuntime plus object storage and the order runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aioboto3
from fastapi import Depends, Request
from forge_kit.runtime import ServiceRuntime

from forge_delivery.pipeline import OrderContext, OrderRunner
from forge_delivery.registry import Registry
from forge_delivery.settings import DeliverySettings


class DeliveryRuntime(ServiceRuntime):
    """Runs background orders while the service runs; at start it resumes orders a dead process left."""

    def __init__(self, settings: DeliverySettings, *, migrations: Path, run_relay: bool = True) -> None:
        super().__init__(settings, migrations=migrations, run_relay=run_relay)
        self.delivery_settings = settings
        self.registry = Registry(settings, lambda: self.temporal, self.task_queue)
        self.context = OrderContext(self.db, settings, aioboto3.Session(), self.registry)
        self.runner = OrderRunner(self.context)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[DeliveryRuntime]:
        async with super().running():
            await self.runner.resume_stale()
            try:
                yield self
            finally:
                await self.runner.stop()


def _delivery_runtime(request: Request) -> DeliveryRuntime:
    runtime: DeliveryRuntime = request.app.state.runtime
    return runtime


delivery_runtime = Depends(_delivery_runtime)
"""FastAPI dependency marker: `svc: Annotated[DeliveryRuntime, delivery_runtime]`."""
