"""Temporal activities on the scheduler's task queue (`forge-scheduler`); models and names live in
`forge_contracts.activities.scheduler`.

Each is idempotent: `request_allocation` by the caller's request key, `run_on_allocation` attaches to
the run when the allocation already runs (or reports how it ended), `release_allocation` does nothing
to an allocation that already ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_contracts.activities.scheduler import (
    ATTACH_WORKLOAD,
    RELEASE_ALLOCATION,
    REQUEST_ALLOCATION,
    RUN_ON_ALLOCATION,
    AllocationGrant,
    AllocationRequest,
    AttachWorkload,
    ReleaseRequest,
    ReleaseResult,
    RunProgress,
    RunResult,
    RunSpec,
)
from forge_contracts.state_machines import IllegalTransition
from forge_kit.errors import ForgeError
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_scheduler import service
from forge_scheduler.backends import tail_lines
from forge_scheduler.schemas import AllocationCreate
from forge_scheduler.service import MACHINE, Scheduler
from forge_scheduler.tables import Allocation

POLL_S = 0.5


def _non_retryable(error: Exception) -> ApplicationError:
    detail = error.detail if isinstance(error, ForgeError) else str(error)
    return ApplicationError(detail, type=type(error).__name__, non_retryable=True)


class SchedulerActivities:
    """The activities, bound to one scheduler (its database and compute backend)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.s = scheduler

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.request_allocation,
            self.run_on_allocation,
            self.attach_workload,
            self.release_allocation,
        ]

    @activity.defn(name=REQUEST_ALLOCATION)
    async def request_allocation(self, request: AllocationRequest) -> AllocationGrant:
        """Request (or find, by request key) an allocation; optionally wait while it is queued."""
        try:
            body = AllocationCreate(
                project_id=request.project_id,
                priority=request.priority,
                gang_size=request.gang_size,
                per_worker=request.per_worker,
                workload_kind=request.workload_kind,
                workload_id=request.workload_id,
                request_key=request.request_key,
                workload=request.workload,
            )
        except ValidationError as error:  # within the contract, beyond what the HTTP API takes
            raise _non_retryable(error) from error
        try:
            found, _ = await service.request_allocation(self.s, request.tenant_id, request.actor, body)
            deadline = time.monotonic() + request.wait_for_admission_s
            try:
                while found.state == "queued" and time.monotonic() < deadline:
                    activity.heartbeat(found.state)
                    await asyncio.sleep(POLL_S)  # polls its own database; admission happens elsewhere
                    found = await service.allocation(self.s, request.tenant_id, found.id)
            except asyncio.CancelledError:  # nobody waits for it any more: leave the queue
                await asyncio.shield(self._cancel(request.tenant_id, found.id))
                raise
        except (ForgeError, IllegalTransition) as error:
            raise _non_retryable(error) from error
        return _grant(found)

    @activity.defn(name=RUN_ON_ALLOCATION)
    async def run_on_allocation(self, spec: RunSpec) -> RunResult:
        """Run the workload (a registered kind) on the allocation, heartbeating the last log lines until
        the workers end; if the activity is cancelled, the allocation is cancelled and its workers
        killed."""
        tenant, allocation_id = spec.tenant_id, spec.allocation_id
        try:
            found = await service.allocation(self.s, tenant, allocation_id)
            if found.state == "admitted":
                found = await self._start(spec)
            elif found.state != "running" and not MACHINE.is_terminal(found.state):
                raise IllegalTransition("allocation", found.state, "start", MACHINE.allowed(found.state))
        except (ForgeError, IllegalTransition) as error:
            raise _non_retryable(error) from error
        started = time.monotonic()
        try:
            while True:
                watcher = self.s.watchers.get(allocation_id)
                if watcher is not None:
                    await asyncio.wait({watcher}, timeout=spec.heartbeat_interval_s)
                elif not MACHINE.is_terminal(found.state):
                    await asyncio.sleep(spec.heartbeat_interval_s)  # run by another instance: poll
                found = await service.allocation(self.s, tenant, allocation_id)
                if MACHINE.is_terminal(found.state) and allocation_id not in self.s.watchers:
                    return await asyncio.to_thread(_result, found)
                elapsed_s = time.monotonic() - started
                activity.heartbeat(await asyncio.to_thread(_progress, found, elapsed_s, spec.log_tail_lines))
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(tenant, allocation_id))
            raise

    async def _start(self, spec: RunSpec) -> Allocation:
        try:
            return await service.run_allocation(self.s, spec.tenant_id, spec.allocation_id, spec.workload)
        except IllegalTransition:  # started meanwhile (its own workload, once admitted)
            return await service.allocation(self.s, spec.tenant_id, spec.allocation_id)

    async def _cancel(self, tenant: str, allocation_id: str) -> None:
        try:
            await service.cancel_allocation(self.s, tenant, allocation_id, "the activity was cancelled", None)
        except IllegalTransition:
            pass  # it ended by itself meanwhile

    @activity.defn(name=ATTACH_WORKLOAD)
    async def attach_workload(self, request: AttachWorkload) -> AllocationGrant:
        """Mark an admitted allocation running for a workload its owner runs itself."""
        try:
            found = await service.attach_workload(
                self.s, request.tenant_id, request.allocation_id, request.runner, request.nodes
            )
        except (ForgeError, IllegalTransition) as error:
            raise _non_retryable(error) from error
        return _grant(found)

    @activity.defn(name=RELEASE_ALLOCATION)
    async def release_allocation(self, request: ReleaseRequest) -> ReleaseResult:
        """Give the allocation back: release it if it runs, cancel it if it never ran; no-op if ended."""
        tenant, allocation_id = request.tenant_id, request.allocation_id
        try:
            found = await service.allocation(self.s, tenant, allocation_id)
            if found.state == "running":
                found = await service.release_allocation(self.s, tenant, allocation_id, None)
            elif not MACHINE.is_terminal(found.state):
                found = await service.cancel_allocation(self.s, tenant, allocation_id, request.reason, None)
        except IllegalTransition:  # it ended meanwhile
            found = await service.allocation(self.s, tenant, allocation_id)
        except ForgeError as error:
            raise _non_retryable(error) from error
        return ReleaseResult(allocation_id=found.id, state=found.state)


def _grant(found: Allocation) -> AllocationGrant:
    return AllocationGrant(
        allocation_id=found.id,
        state=found.state,
        admitted=found.state in service.HOLDING,
        rejection_reason=found.reason if found.state == "rejected" else None,
        queue=found.queue,
    )


def _progress(found: Allocation, elapsed_s: float, lines: int) -> RunProgress:
    files = _log_files(found)
    last = tail_lines(files[0], lines) if files and lines else []  # rank 0 speaks for the gang
    return RunProgress(allocation_id=found.id, elapsed_s=round(elapsed_s, 3), last_lines=last)


def _log_files(found: Allocation) -> list[Path]:
    if not found.log_dir:
        return []
    return sorted(Path(found.log_dir).glob("worker-*.log"))


def _result(found: Allocation) -> RunResult:
    return RunResult(
        allocation_id=found.id,
        state=found.state,
        exit_code=found.exit_code,
        succeeded=found.state == "released" and found.exit_code == 0,
        log_dir=found.log_dir or "",
        log_files=[str(path) for path in _log_files(found)],
    )
