"""HTTP routes of the labeling service: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from forge_labeling import service
from forge_labeling.domain import TASK_STATES, counts_by_state, progress
from forge_labeling.schemas import (
    AnnotationCreate,
    AnnotationView,
    Assign,
    ExportCreate,
    ExportView,
    ProjectCreate,
    ProjectView,
    Reason,
    Rejection,
    Review,
    TaskDetail,
    TaskPage,
    TaskView,
    TemplateCreate,
    TemplateView,
)
from forge_labeling.tables import Export, Project

TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
STATE_PATTERN = "^(" + "|".join(TASK_STATES) + ")$"

router = APIRouter(tags=["labeling"])


def _deps(request: Request) -> service.Deps:
    deps: service.Deps = request.app.state.deps
    return deps


def _caller(
    tenant: Annotated[str, Header(alias="x-forge-tenant", pattern=TENANT_PATTERN)],
    user: Annotated[str | None, Header(alias="x-forge-user", min_length=1, max_length=256)] = None,
) -> service.Caller:
    return service.Caller(tenant=tenant, user=user)


Deps = Annotated[service.Deps, Depends(_deps)]
Caller = Annotated[service.Caller, Depends(_caller)]


def _project_view(project: Project, counts: dict[str, int]) -> ProjectView:
    counts = counts_by_state(counts)
    return ProjectView(
        id=project.id,
        name=project.name,
        template_id=project.template_id,
        dataset_id=project.dataset_id,
        dataset_version_id=project.dataset_version_id,
        dataset_version_number=project.dataset_version_number,
        task_count=project.task_count,
        counts=counts,
        progress=progress(counts),
        created_by=project.created_by,
        created_at=project.created_at,
    )


def _export_view(deps: service.Deps, found: Export) -> ExportView:
    view = ExportView.model_validate(found, from_attributes=True)
    if found.object_key:
        view = view.model_copy(update={"object_uri": deps.store.uri(found.object_key, found.bucket)})
    return view


# --- templates --------------------------------------------------------------------------------------


@router.post("/templates", status_code=201)
async def create_template(body: TemplateCreate, deps: Deps, caller: Caller) -> TemplateView:
    return TemplateView.model_validate(await service.create_template(deps, caller, body))


@router.get("/templates")
async def list_templates(deps: Deps, caller: Caller) -> list[TemplateView]:
    return [TemplateView.model_validate(t) for t in await service.templates(deps, caller)]


@router.get("/templates/{template_id}")
async def get_template(template_id: str, deps: Deps, caller: Caller) -> TemplateView:
    return TemplateView.model_validate(await service.template(deps, caller, template_id))


# --- projects ---------------------------------------------------------------------------------------


@router.post("/projects", status_code=201)
async def create_project(body: ProjectCreate, deps: Deps, caller: Caller) -> ProjectView:
    return _project_view(*await service.create_project(deps, caller, body))


@router.get("/projects")
async def list_projects(deps: Deps, caller: Caller) -> list[ProjectView]:
    return [_project_view(p, c) for p, c in await service.projects(deps, caller)]


@router.get("/projects/{project_id}")
async def get_project(project_id: str, deps: Deps, caller: Caller) -> ProjectView:
    return _project_view(*await service.project(deps, caller, project_id))


@router.get("/projects/{project_id}/tasks")
async def list_tasks(
    project_id: str,
    deps: Deps,
    caller: Caller,
    state: Annotated[str | None, Query(pattern=STATE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TaskPage:
    found, total = await service.tasks(deps, caller, project_id, state, limit, offset)
    return TaskPage(tasks=[TaskView.model_validate(t) for t in found], total=total)


# --- tasks ------------------------------------------------------------------------------------------


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, deps: Deps, caller: Caller) -> TaskDetail:
    found, annotations = await service.task(deps, caller, task_id)
    view = TaskDetail.model_validate(found)
    return view.model_copy(update={"annotations": [AnnotationView.model_validate(a) for a in annotations]})


@router.post("/tasks/{task_id}/assign")
async def assign_task(task_id: str, deps: Deps, caller: Caller, body: Assign | None = None) -> TaskView:
    assignee = body.assignee if body else None
    return TaskView.model_validate(await service.assign(deps, caller, task_id, assignee))


@router.post("/tasks/{task_id}/unassign")
async def unassign_task(task_id: str, deps: Deps, caller: Caller, body: Reason | None = None) -> TaskView:
    return TaskView.model_validate(
        await service.unassign(deps, caller, task_id, body.reason if body else None)
    )


@router.post("/tasks/{task_id}/start")
async def start_task(task_id: str, deps: Deps, caller: Caller) -> TaskView:
    return TaskView.model_validate(await service.start(deps, caller, task_id))


@router.post("/tasks/{task_id}/annotations", status_code=201)
async def submit_annotation(
    task_id: str, body: AnnotationCreate, deps: Deps, caller: Caller
) -> AnnotationView:
    _, annotation = await service.submit(deps, caller, task_id, body.label, body.lead_time_s)
    return AnnotationView.model_validate(annotation)


@router.post("/tasks/{task_id}/accept")
async def accept_task(task_id: str, deps: Deps, caller: Caller, body: Review | None = None) -> TaskView:
    reviewer = body.reviewer if body else None
    return TaskView.model_validate(await service.accept(deps, caller, task_id, reviewer))


@router.post("/tasks/{task_id}/reject")
async def reject_task(task_id: str, body: Rejection, deps: Deps, caller: Caller) -> TaskView:
    return TaskView.model_validate(await service.reject(deps, caller, task_id, body.reviewer, body.reason))


@router.post("/tasks/{task_id}/rework")
async def rework_task(task_id: str, deps: Deps, caller: Caller) -> TaskView:
    return TaskView.model_validate(await service.rework(deps, caller, task_id))


@router.post("/tasks/{task_id}/skip")
async def skip_task(task_id: str, deps: Deps, caller: Caller, body: Reason | None = None) -> TaskView:
    return TaskView.model_validate(await service.skip(deps, caller, task_id, body.reason if body else None))


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(task_id: str, deps: Deps, caller: Caller, body: Reason | None = None) -> TaskView:
    return TaskView.model_validate(await service.cancel(deps, caller, task_id, body.reason if body else None))


# --- exports ----------------------------------------------------------------------------------------


@router.post("/projects/{project_id}/export", status_code=202)
async def export_project(
    project_id: str, body: ExportCreate, deps: Deps, caller: Caller, response: Response
) -> ExportView:
    found, created = await service.create_export(deps, caller, project_id, body)
    if not created:
        response.status_code = 200
    return _export_view(deps, found)


@router.get("/projects/{project_id}/exports/{export_id}")
async def get_export(project_id: str, export_id: str, deps: Deps, caller: Caller) -> ExportView:
    return _export_view(deps, await service.export(deps, caller, project_id, export_id))
