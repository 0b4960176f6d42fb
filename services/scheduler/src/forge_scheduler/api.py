"""The scheduler's HTTP API: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from forge_contracts.activities.scheduler import AllocationState, Workload
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action

from forge_scheduler import service
from forge_scheduler.schemas import (
    AllocationCreate,
    AllocationView,
    CancelBody,
    LogsView,
    ProjectCreate,
    ProjectView,
    Quota,
    UsageView,
    WorkerLogView,
)
from forge_scheduler.service import Scheduler

Reader = Annotated[Principal, allow(Action.SCHEDULER_READ)]
ProjectsAdmin = Annotated[Principal, allow(Action.SCHEDULER_PROJECTS_MANAGE)]
QuotaAdmin = Annotated[Principal, allow(Action.SCHEDULER_QUOTA_MANAGE)]
Allocator = Annotated[Principal, allow(Action.SCHEDULER_ALLOCATE)]


def _scheduler(request: Request) -> Scheduler:
    return cast(Scheduler, request.app.state.scheduler)


Svc = Annotated[Scheduler, Depends(_scheduler)]

router = APIRouter()


@router.post("/projects", status_code=status.HTTP_201_CREATED, tags=["projects"])
async def create_project(body: ProjectCreate, caller: ProjectsAdmin, s: Svc) -> ProjectView:
    """Create a project in the caller's tenant (tenant admins)."""
    return ProjectView.of(await service.create_project(s, caller.tenant_id, body))


@router.get("/projects", tags=["projects"])
async def list_projects(caller: Reader, s: Svc) -> list[ProjectView]:
    return [ProjectView.of(p) for p in await service.projects(s, caller.tenant_id)]


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(project_id: str, caller: Reader, s: Svc) -> ProjectView:
    return ProjectView.of(await service.project(s, caller.tenant_id, project_id))


@router.put("/projects/{project_id}/quota", tags=["projects"])
async def set_quota(project_id: str, body: Quota, caller: QuotaAdmin, s: Svc) -> ProjectView:
    """Replace the project's quota; queued allocations are re-examined."""
    return ProjectView.of(await service.set_quota(s, caller.tenant_id, project_id, body))


@router.get("/projects/{project_id}/usage", tags=["projects"])
async def project_usage(project_id: str, caller: Reader, s: Svc) -> UsageView:
    """What the project's admitted and running allocations hold, against its quota (RS-3)."""
    return await service.usage(s, caller.tenant_id, project_id)


@router.post(
    "/allocations",
    status_code=status.HTTP_201_CREATED,
    tags=["allocations"],
    responses={
        200: {"description": "the request key was already used for this request: the existing allocation"}
    },
)
async def request_allocation(
    body: AllocationCreate, caller: Allocator, s: Svc, response: Response
) -> AllocationView:
    """Ask for compute: the answer is admitted, queued, or rejected (with the reason) at once; with a
    `workload`, it starts as soon as it is admitted. A `request_key` used before with another request is
    a 422."""
    found, created = await service.request_allocation(s, caller.tenant_id, caller.actor, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return AllocationView.of(found)


@router.get("/allocations", tags=["allocations"])
async def list_allocations(
    caller: Reader,
    s: Svc,
    project_id: str | None = None,
    state: AllocationState | None = None,
) -> list[AllocationView]:
    found = await service.allocations(s, caller.tenant_id, project_id=project_id, state=state)
    return [AllocationView.of(a) for a in found]


@router.get("/allocations/{allocation_id}", tags=["allocations"])
async def get_allocation(allocation_id: str, caller: Reader, s: Svc) -> AllocationView:
    return AllocationView.of(await service.allocation(s, caller.tenant_id, allocation_id))


@router.post("/allocations/{allocation_id}/run", tags=["allocations"])
async def run_allocation(
    allocation_id: str,
    caller: Allocator,
    s: Svc,
    workload: Annotated[Workload | None, Body()] = None,
) -> AllocationView:
    """Start the admitted allocation's gang running `workload`, a registered kind with its parameters
    (or the one given at request); 409 unless admitted."""
    return AllocationView.of(await service.run_allocation(s, caller.tenant_id, allocation_id, workload))


@router.get("/allocations/{allocation_id}/logs", tags=["allocations"])
async def allocation_logs(
    allocation_id: str,
    caller: Reader,
    s: Svc,
    tail: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> LogsView:
    """The last `tail` lines of each worker's output (stdout and stderr together)."""
    found, logs = await service.allocation_logs(s, caller.tenant_id, allocation_id, tail)
    return LogsView(
        allocation_id=found.id,
        state=found.state,
        workers=[WorkerLogView(rank=w.rank, path=str(w.path), lines=w.lines) for w in logs],
    )


@router.post("/allocations/{allocation_id}/cancel", tags=["allocations"])
async def cancel_allocation(
    allocation_id: str,
    caller: Allocator,
    s: Svc,
    body: Annotated[CancelBody | None, Body()] = None,
) -> AllocationView:
    """Cancel it in any non-final state; running workers are killed."""
    reason = body.reason if body else None
    return AllocationView.of(
        await service.cancel_allocation(s, caller.tenant_id, allocation_id, reason, caller.actor)
    )


@router.post("/allocations/{allocation_id}/release", tags=["allocations"])
async def release_allocation(allocation_id: str, caller: Allocator, s: Svc) -> AllocationView:
    """Give back a running allocation (its workers are stopped); 409 unless it runs."""
    return AllocationView.of(
        await service.release_allocation(s, caller.tenant_id, allocation_id, caller.actor)
    )
