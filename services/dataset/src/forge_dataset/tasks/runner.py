"""The activities behind the task workflow: `dataset.run_task` runs a task's handler (one per kind) while
heartbeating, so a cancel reaches it and a dead worker is noticed; `dataset.end_task` ends a task that
did not succeed. Handlers report progress through their `TaskContext`, which writes it (with an ETA) to
the task row at most once a second."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from forge_contracts.activities.dataset import END_TASK, RUN_TASK, TaskEnd, TaskOutcome, TaskRef
from forge_kit.auth import Principal
from forge_kit.errors import ForgeError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_dataset.deps import Deps
from forge_dataset.tables import DatasetTask
from forge_dataset.tasks import service

HEARTBEAT_EVERY_S = 2.0
REPORT_EVERY_S = 1.0


@dataclass
class TaskResult:
    """What a handler produced: counters, a result document and, for some kinds, a new version. A
    handler that publishes a version ends the task itself, in the same transaction (`ended=True`)."""

    stats: dict[str, int] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    output_version_id: str | None = None
    ended: bool = False


@dataclass
class TaskContext:
    deps: Deps
    task: DatasetTask
    models: dict[str, str] = field(default_factory=dict)
    """The registry's models the task names, resolved by its workflow: key -> s3:// location."""
    _started: float = field(default_factory=time.monotonic)
    _reported: float = 0.0

    @property
    def caller(self) -> Principal:
        """The dataset service acting for whoever created the task, in the task's tenant."""
        return Principal.of_service("dataset", self.task.tenant, on_behalf_of=self.task.created_by)

    async def report(self, progress: float, *, force: bool = False, **detail: Any) -> None:
        """Record progress (0..1) and what it counts (`phase`, records, bytes ...), with an ETA from the
        rate so far; written at most once a second unless `force`."""
        at = time.monotonic()
        if not force and at - self._reported < REPORT_EVERY_S:
            return
        self._reported = at
        progress = min(1.0, max(0.0, progress))
        elapsed = at - self._started
        eta = elapsed * (1 - progress) / progress if progress >= 0.01 else None
        await service.report(
            self.deps,
            self.task.tenant,
            self.task.id,
            round(progress, 4),
            None if eta is None else round(eta, 1),
            detail,
        )


Handler = Callable[[TaskContext], Awaitable[TaskResult]]


def _non_retryable(error: ForgeError) -> ApplicationError:
    return ApplicationError(error.detail, type=type(error).__name__, non_retryable=True)


class TaskActivities:
    """The task activities, bound to the service and to a handler per task kind."""

    def __init__(self, deps: Deps, handlers: dict[str, Handler]) -> None:
        self.deps = deps
        self.handlers = handlers

    @activity.defn(name=RUN_TASK)
    async def run_task(self, ref: TaskRef) -> TaskOutcome:
        found = await service.begin(self.deps, ref.tenant_id, ref.task_id)
        if found is None:  # ended already (cancelled while queued): nothing to run
            return await self._outcome(ref)
        handler = self.handlers.get(found.kind)
        if handler is None:
            raise ApplicationError(
                f"no handler for {found.kind!r} tasks", type="Unprocessable", non_retryable=True
            )
        beating = asyncio.create_task(self._heartbeat())
        try:
            done = await handler(TaskContext(self.deps, found, models=ref.models))
        except ForgeError as error:
            raise _non_retryable(error) from error
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        if not done.ended:
            await service.succeed(
                self.deps,
                ref.tenant_id,
                ref.task_id,
                stats=done.stats,
                result=done.result,
                output_version_id=done.output_version_id,
            )
        return TaskOutcome(task_id=ref.task_id, state="succeeded")

    @activity.defn(name=END_TASK)
    async def end_task(self, end: TaskEnd) -> TaskOutcome:
        async with self.deps.db.session() as session:
            found = await session.get(DatasetTask, end.task_id)
        if found is not None and found.tenant == end.tenant_id and "staging_key" in found.parameters:
            # What the task was handed in staging (an archive to expand) was kept for its retries; it
            # goes before the task is seen to end.
            await self.deps.store.delete(found.parameters["staging_key"])
        await service.end_task(self.deps, end.tenant_id, end.task_id, end.outcome, end.error)
        return await self._outcome(TaskRef(tenant_id=end.tenant_id, task_id=end.task_id))

    async def _outcome(self, ref: TaskRef) -> TaskOutcome:
        caller = Principal.of_service("dataset", ref.tenant_id)
        async with self.deps.db.session() as session:
            found = await session.get(DatasetTask, ref.task_id)
        if found is None or found.tenant != caller.tenant_id:
            raise ApplicationError(
                f"task {ref.task_id!r} does not exist", type="NotFound", non_retryable=True
            )
        state = found.state if found.state in ("succeeded", "failed", "cancelled") else "failed"
        return TaskOutcome(task_id=found.id, state=state, error=found.error)

    @staticmethod
    async def _heartbeat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    def all(self) -> list[Callable[..., Any]]:
        return [self.run_task, self.end_task]
