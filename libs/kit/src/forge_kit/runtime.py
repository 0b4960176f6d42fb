"""A service's composition root: database, migrations, broker, inbox consumers, outbox relay, Temporal
worker and HTTP app, started and stopped together in the right order.

    service = ServiceRuntime(ServiceSettings.for_service("dataset"), migrations=MIGRATIONS_DIR)
    service.subscribe(topics=[...], consumer="dataset.labeling-events", handler=on_labeling_event)
    service.register(workflows=[...], activities=[...])
    app = service.http_app(routers=[api.router])

Start: migrate → connect Temporal → start broker (consumers) → relay → worker. Stop (SIGTERM ends
uvicorn, which ends the lifespan): stop taking work, let in-flight handlers and the relay's current batch
finish, then close connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from faststream.kafka import KafkaBroker
from temporalio.client import Client

from forge_kit import audit, observability, outbox
from forge_kit.auth import (
    Authenticator,
    ClientCredentials,
    Directory,
    HttpDirectory,
    TokenVerifier,
    document_routes,
)
from forge_kit.db import Database, migrate
from forge_kit.http import create_app
from forge_kit.inbox import Handler, InboxConsumer, RetryPolicy, subscribe
from forge_kit.relay import OutboxRelay
from forge_kit.settings import ServiceSettings
from forge_kit.temporal import connect, create_worker, ping, task_queue


class ServiceRuntime:
    """Everything one service process runs, with one lifecycle."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations: Path,
        run_relay: bool = True,
        directory: Directory | None = None,
    ) -> None:
        observability.configure(settings.service)
        self.settings = settings
        self.migrations = migrations
        self.db = Database(settings.database_url)
        self.broker = KafkaBroker(settings.kafka_bootstrap, graceful_timeout=settings.shutdown_grace_s)
        self.relay = (
            OutboxRelay(self.db.dsn, settings.kafka_bootstrap, service=settings.service)
            if run_relay
            else None
        )
        self.consumers: list[InboxConsumer] = []
        self.workflows: list[type] = []
        self.activities: list[Callable[..., Any]] = []
        self.temporal: Client | None = None
        self.task_queue = settings.task_queue or task_queue(settings.service)
        issuer = settings.oidc_issuer.rstrip("/")
        self.credentials = ClientCredentials(
            settings.oidc_token_url or f"{issuer}/protocol/openid-connect/token",
            settings.client_id,
            settings.client_secret,
        )
        if directory is None and settings.directory_url is None:
            raise ValueError("no directory: give one, or the directory_url setting")
        self.directory: Directory = directory or HttpDirectory(str(settings.directory_url), self.credentials)
        self.authenticator = Authenticator(
            TokenVerifier(issuer, settings.oidc_audience, jwks_uri=settings.oidc_jwks_uri), self.directory
        )

    def subscribe(
        self,
        *,
        topics: Sequence[str],
        consumer: str,
        handler: Handler,
        retry: RetryPolicy | None = None,
        start: Literal["earliest", "latest"] = "earliest",
    ) -> InboxConsumer:
        """Handle events from `topics` exactly once per event (see forge_kit.inbox)."""
        inbox = subscribe(
            self.broker, self.db, topics=topics, consumer=consumer, handler=handler, retry=retry, start=start
        )
        self.consumers.append(inbox)
        return inbox

    def register(
        self, *, workflows: Sequence[type] = (), activities: Sequence[Callable[..., Any]] = ()
    ) -> None:
        """Workflows and activities this service's worker runs on its task queue."""
        self.workflows.extend(workflows)
        self.activities.extend(activities)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        """Start every part; on exit, or if a later part fails to start, stop those already started,
        gracefully and in reverse order."""
        log = observability.logger(component="runtime")
        await migrate(self.settings.database_url, self.migrations)
        async with contextlib.AsyncExitStack() as parts:
            parts.push_async_callback(self.db.dispose)
            self.temporal = await connect(self.settings.temporal_address, self.settings.temporal_namespace)
            worker = None
            if self.workflows or self.activities:
                # Built before anything runs: an invalid workflow fails the start here.
                worker = create_worker(
                    self.temporal,
                    self.task_queue,
                    workflows=self.workflows,
                    activities=self.activities,
                    graceful_shutdown_s=self.settings.shutdown_grace_s,
                )
            await self.broker.start()
            parts.push_async_callback(self._stop_consumers)
            if self.relay is not None:
                parts.push_async_callback(
                    self._stop_task, self.relay.stop, self._spawn(self.relay.run(), "relay")
                )
            if worker is not None:
                parts.push_async_callback(
                    self._stop_task, worker.shutdown, self._spawn(worker.run(), "worker")
                )
            log.info("service.started", task_queue=self.task_queue)
            try:
                yield self
            finally:
                log.info("service.stopping")
        log.info("service.stopped")

    @staticmethod
    def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return asyncio.create_task(coro, name=name)

    async def _stop_task(self, stop: Callable[[], Awaitable[None]], task: asyncio.Task[None]) -> None:
        await stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, self.settings.shutdown_grace_s)

    async def _stop_consumers(self) -> None:
        for consumer in self.consumers:
            await consumer.drain()  # offsets of finished batches reach the broker
        await self.broker.stop()  # waits for in-flight handlers (graceful_timeout)

    async def _kafka_ready(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            await asyncio.wait_for(admin.describe_cluster(), 5)
        finally:
            await admin.close()

    async def _temporal_ready(self) -> None:
        if self.temporal is None:
            raise ConnectionError("temporal client not connected yet")
        await asyncio.wait_for(ping(self.temporal, timeout_s=5), 6)

    def http_app(self, routers: Sequence[APIRouter] = ()) -> FastAPI:
        """The service's HTTP app; its lifespan runs the whole service."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with self.running():
                yield

        app = create_app(
            self.settings.service,
            readiness={
                "database": self.db.ping,
                "kafka": self._kafka_ready,
                "temporal": self._temporal_ready,
            },
            lifespan=lifespan,
        )
        app.state.runtime = self
        app.state.authenticator = self.authenticator
        for router in routers:
            document_routes(router)
            app.include_router(router)
        app.middleware("http")(self._audit_request)
        return app

    async def _audit_request(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Record every state-changing request of a signed-in caller, with how it ended (forge_kit.audit)."""
        if request.method not in audit.MUTATING_METHODS:
            return await call_next(request)
        status = 500
        response: Response | None = None
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            principal = getattr(request.state, "principal", None)
            if principal is not None:
                route = getattr(request.scope.get("route"), "path", None) or "unmatched"
                entry = audit.request_entry(
                    self.settings.service,
                    principal,
                    method=request.method,
                    route=route,
                    path=request.url.path,
                    status_code=status,
                    request_id=response.headers.get("x-request-id") if response is not None else None,
                )
                try:
                    async with self.db.transaction() as session:
                        await outbox.publish(session, entry)
                except Exception as error:  # the trail must not turn a done request into an error
                    observability.logger(component="audit").error(
                        "audit.request_not_recorded", error=repr(error)
                    )


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
"""FastAPI dependency: the service runtime serving this request (`svc: Runtime` in a route)."""
