"""The scheduler's HTTP API: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from forge_contracts.activities.scheduler import AllocationState, CommandSpec

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

TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

Tenant = Annotated[
    str,
    Header(alias="x-forge-tenant", pattern=TENANT_PATTERN, description="The caller's tenant (a DNS label)."),
]
User = Annotated[str | None, Header(alias="x-forge-user", max_length=256)]


def _scheduler(request: Request) -> Scheduler:
    return cast(Scheduler, request.app.state.scheduler)


Svc = Annotated[Scheduler, Depends(_scheduler)]

router = APIRouter()


@router.post("/projects", status_code=status.HTTP_201_CREATED, tags=["projects"])
async def create_project(body: ProjectCreate, tenant: Tenant, s: Svc) -> ProjectView:
    """Create a project in the caller's tenant (the tenant is recorded on first use)."""
    return ProjectView.of(await service.create_project(s, tenant, body))


@router.get("/projects", tags=["projects"])
async def list_projects(tenant: Tenant, s: Svc) -> list[ProjectView]:
    return [ProjectView.of(p) for p in await service.projects(s, tenant)]


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(project_id: str, tenant: Tenant, s: Svc) -> ProjectView:
    return ProjectView.of(await service.project(s, tenant, project_id))


@router.put("/projects/{project_id}/quota", tags=["projects"])
async def set_quota(project_id: str, body: Quota, tenant: Tenant, s: Svc) -> ProjectView:
    """Replace the project's quota; queued allocations are re-examined."""
    return ProjectView.of(await service.set_quota(s, tenant, project_id, body))


@router.get("/projects/{project_id}/usage", tags=["projects"])
async def project_usage(project_id: str, tenant: Tenant, s: Svc) -> UsageView:
    """What the project's admitted and running allocations hold, against its quota (RS-3)."""
    return await service.usage(s, tenant, project_id)


@router.post(
    "/allocations",
    status_code=status.HTTP_201_CREATED,
    tags=["allocations"],
    responses={200: {"description": "the request key was already used: the existing allocation"}},
)
async def request_allocation(
    body: AllocationCreate, tenant: Tenant, s: Svc, response: Response, user: User = None
) -> AllocationView:
    """Ask for compute: the answer is admitted, queued, or rejected (with the reason) at once."""
    found, created = await service.request_allocation(s, tenant, user, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return AllocationView.of(found)


@router.get("/allocations", tags=["allocations"])
async def list_allocations(
    tenant: Tenant,
    s: Svc,
    project_id: str | None = None,
    state: AllocationState | None = None,
) -> list[AllocationView]:
    found = await service.allocations(s, tenant, project_id=project_id, state=state)
    return [AllocationView.of(a) for a in found]


@router.get("/allocations/{allocation_id}", tags=["allocations"])
async def get_allocation(allocation_id: str, tenant: Tenant, s: Svc) -> AllocationView:
    return AllocationView.of(await service.allocation(s, tenant, allocation_id))


@router.post("/allocations/{allocation_id}/run", tags=["allocations"])
async def run_allocation(
    allocation_id: str,
    tenant: Tenant,
    s: Svc,
    command: Annotated[CommandSpec | None, Body()] = None,
) -> AllocationView:
    """Start the admitted allocation's gang with `command` (or the one given at request)."""
    return AllocationView.of(await service.run_allocation(s, tenant, allocation_id, command))


@router.get("/allocations/{allocation_id}/logs", tags=["allocations"])
async def allocation_logs(
    allocation_id: str,
    tenant: Tenant,
    s: Svc,
    tail: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> LogsView:
    """The last `tail` lines of each worker's output (stdout and stderr together)."""
    found, logs = await service.allocation_logs(s, tenant, allocation_id, tail)
    return LogsView(
        allocation_id=found.id,
        state=found.state,
        workers=[WorkerLogView(rank=w.rank, path=str(w.path), lines=w.lines) for w in logs],
    )


@router.post("/allocations/{allocation_id}/cancel", tags=["allocations"])
async def cancel_allocation(
    allocation_id: str,
    tenant: Tenant,
    s: Svc,
    body: Annotated[CancelBody | None, Body()] = None,
    user: User = None,
) -> AllocationView:
    """Cancel it in any non-final state; running workers are killed."""
    reason = body.reason if body else None
    return AllocationView.of(await service.cancel_allocation(s, tenant, allocation_id, reason, user))


@router.post("/allocations/{allocation_id}/release", tags=["allocations"])
async def release_allocation(allocation_id: str, tenant: Tenant, s: Svc, user: User = None) -> AllocationView:
    """Give back a running allocation (its workers are stopped); 409 unless it runs."""
    return AllocationView.of(await service.release_allocation(s, tenant, allocation_id, user))
