"""The scheduler running on the real stack (its own database, task queue and jobs folder), HTTP helpers,
and a reader of its events on the shared `forge.scheduler.events` topic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from forge_contracts.envelope import EventEnvelope, from_kafka, topic_for
from forge_kit.stack_env import StackSettings
from forge_scheduler.app import SchedulerRuntime, app_for, build_runtime

from tests.harness import service_settings, serving
from tests.identity import as_service, as_user
from tests.waiting import eventually

TOPIC = topic_for("scheduler")
ACME = as_user("alice", "acme")
GLOBEX = as_user("eve", "globex")
ACME_ADMIN = as_user("ada", "acme")  # a platform admin: quotas
GLOBEX_ADMIN = as_user("ada", "globex")
# Allocations come from the services that render workloads, for the user who asked.
ACME_SERVICE = as_service("training", "acme", on_behalf_of="alice")
GLOBEX_SERVICE = as_service("training", "globex", on_behalf_of="eve")
GIB = 1024**3


class EventLog:
    """Events on the scheduler topic from the moment the test started, filtered by subject."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[EventEnvelope] = []

    async def _drain(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                self.seen.append(from_kafka(record.headers, record.value))

    async def of(self, subject: str, count: int) -> list[EventEnvelope]:
        """The events of `subject`, once at least `count` arrived (then one more drain, to catch extras)."""

        async def enough() -> list[EventEnvelope]:
            await self._drain()
            mine = [e for e in self.seen if e.subject == subject]
            return mine if len(mine) >= count else []

        await eventually(enough, timeout_s=30, what=f"{count} events of {subject}")
        await self._drain()
        return [e for e in self.seen if e.subject == subject]


async def _ensure_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer) -> Any:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(TOPIC)


@pytest.fixture
async def events(stack_settings: StackSettings) -> AsyncIterator[EventLog]:
    await _ensure_topic(stack_settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack_settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await eventually(lambda: _partitions(consumer), what="the scheduler topic's partitions")
        tps = [TopicPartition(TOPIC, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, before the test produces anything
        yield EventLog(consumer)
    finally:
        await consumer.stop()


@dataclass
class SchedulerService:
    runtime: SchedulerRuntime
    http: httpx.AsyncClient
    jobs_dir: Path

    async def project(self, name: str = "research", headers: dict[str, str] = ACME, **quota: Any) -> str:
        """A new project with `quota` (cpu_millis, memory_bytes, accelerators); returns its id."""
        created = await self.http.post("/projects", json={"name": name}, headers=headers)
        assert created.status_code == 201, created.text
        project_id: str = created.json()["id"]
        if quota:
            body = {"cpu_millis": 0, "memory_bytes": 0, "accelerators": {}, **quota}
            admin = as_user("ada", getattr(headers, "tenant", None) or "acme")
            response = await self.http.put(f"/projects/{project_id}/quota", json=body, headers=admin)
            assert response.status_code == 200, response.text
        return project_id

    async def allocate(
        self,
        project_id: str,
        *,
        cpu_millis: int = 1000,
        memory_bytes: int = GIB,
        gang_size: int = 1,
        priority: int = 0,
        accelerators: dict[str, int] | None = None,
        headers: dict[str, str] = ACME,
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "project_id": project_id,
            "gang_size": gang_size,
            "priority": priority,
            "per_worker": {
                "cpu_millis": cpu_millis,
                "memory_bytes": memory_bytes,
                "accelerators": accelerators or {},
            },
            **extra,
        }
        # Allocations are requested by the service rendering the workload, in the caller's tenant.
        tenant = getattr(headers, "tenant", None) or "acme"
        service = as_service("training", tenant, on_behalf_of=getattr(headers, "username", None))
        response = await self.http.post("/allocations", json=body, headers=service)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    async def state(self, allocation_id: str, headers: dict[str, str] = ACME) -> str:
        response = await self.http.get(f"/allocations/{allocation_id}", headers=headers)
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    async def ended(self, allocation_id: str, headers: dict[str, str] = ACME) -> dict[str, Any]:
        """The allocation once it reached a final state with its exit code recorded."""

        async def done() -> dict[str, Any] | None:
            found: dict[str, Any] = (
                await self.http.get(f"/allocations/{allocation_id}", headers=headers)
            ).json()
            final = found["state"] in ("released", "cancelled", "rejected")
            return (
                found if final and (found["exit_code"] is not None or found["started_at"] is None) else None
            )

        return await eventually(done, timeout_s=20, what=f"allocation {allocation_id} to end")


@asynccontextmanager
async def running_scheduler(
    stack_settings: StackSettings, database: str, jobs_dir: Path, workflows: Sequence[type] = ()
) -> AsyncIterator[SchedulerService]:
    """The scheduler (HTTP, relay, Temporal worker with its activities and `workflows`) on the stack."""
    runtime = build_runtime(service_settings(stack_settings, database, "scheduler"), jobs_dir=jobs_dir)
    runtime.register(workflows=workflows)
    async with serving(app_for(runtime)) as http:
        yield SchedulerService(runtime, http, jobs_dir)


@pytest.fixture
async def scheduler(
    stack_settings: StackSettings, database: str, tmp_path: Path, events: EventLog
) -> AsyncIterator[SchedulerService]:
    async with running_scheduler(stack_settings, database, tmp_path / "jobs") as running:
        yield running
