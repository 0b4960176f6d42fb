"""HTTP routes of the labeling service: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action
from forge_kit.types import NonNegativeInt64Param

from forge_labeling import service
from forge_labeling.domain import TASK_STATES, counts_by_state, progress
from forge_labeling.schemas import (
    AnnotationCreate,
    AnnotationView,
    Assign,
    AssignTo,
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

STATE_PATTERN = "^(" + "|".join(TASK_STATES) + ")$"

router = APIRouter(tags=["labeling"])


def _deps(request: Request) -> service.Deps:
    deps: service.Deps = request.app.state.deps
    return deps


CanLabelingAnnotate = Annotated[Principal, allow(Action.LABELING_ANNOTATE)]
CanLabelingManage = Annotated[Principal, allow(Action.LABELING_MANAGE)]
CanLabelingRead = Annotated[Principal, allow(Action.LABELING_READ)]
CanLabelingReview = Annotated[Principal, allow(Action.LABELING_REVIEW)]
Deps = Annotated[service.Deps, Depends(_deps)]


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
async def create_template(body: TemplateCreate, deps: Deps, caller: CanLabelingManage) -> TemplateView:
    return TemplateView.model_validate(await service.create_template(deps, caller, body))


@router.get("/templates")
async def list_templates(deps: Deps, caller: CanLabelingRead) -> list[TemplateView]:
    return [TemplateView.model_validate(t) for t in await service.templates(deps, caller)]


@router.get("/templates/{template_id}")
async def get_template(template_id: str, deps: Deps, caller: CanLabelingRead) -> TemplateView:
    return TemplateView.model_validate(await service.template(deps, caller, template_id))


# --- projects ---------------------------------------------------------------------------------------


@router.post("/projects", status_code=201)
async def create_project(body: ProjectCreate, deps: Deps, caller: CanLabelingManage) -> ProjectView:
    return _project_view(*await service.create_project(deps, caller, body))


@router.get("/projects")
async def list_projects(deps: Deps, caller: CanLabelingRead) -> list[ProjectView]:
    return [_project_view(p, c) for p, c in await service.projects(deps, caller)]


@router.get("/projects/{project_id}")
async def get_project(project_id: str, deps: Deps, caller: CanLabelingRead) -> ProjectView:
    return _project_view(*await service.project(deps, caller, project_id))


@router.get("/projects/{project_id}/tasks")
async def list_tasks(
    project_id: str,
    deps: Deps,
    caller: CanLabelingRead,
    state: Annotated[str | None, Query(pattern=STATE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[NonNegativeInt64Param, Query()] = 0,
) -> TaskPage:
    found, total = await service.tasks(deps, caller, project_id, state, limit, offset)
    return TaskPage(tasks=[TaskView.model_validate(t) for t in found], total=total)


# --- tasks ------------------------------------------------------------------------------------------


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, deps: Deps, caller: CanLabelingRead) -> TaskDetail:
    found, annotations = await service.task(deps, caller, task_id)
    view = TaskDetail.model_validate(found)
    return view.model_copy(update={"annotations": [AnnotationView.model_validate(a) for a in annotations]})


@router.post("/tasks/{task_id}/assign")
async def assign_task(
    task_id: str, deps: Deps, caller: CanLabelingAnnotate, body: Assign | None = None
) -> TaskView:
    assignee = body.assignee if body else None
    return TaskView.model_validate(await service.assign(deps, caller, task_id, assignee))


@router.post("/tasks/{task_id}/assign-to")
async def assign_task_to(task_id: str, body: AssignTo, deps: Deps, caller: CanLabelingManage) -> TaskView:
    """A project manager hands the task to an annotator (annotators take tasks with `/assign`)."""
    return TaskView.model_validate(await service.assign(deps, caller, task_id, body.assignee))


@router.post("/tasks/{task_id}/unassign")
async def unassign_task(
    task_id: str, deps: Deps, caller: CanLabelingManage, body: Reason | None = None
) -> TaskView:
    return TaskView.model_validate(
        await service.unassign(deps, caller, task_id, body.reason if body else None)
    )


@router.post("/tasks/{task_id}/start")
async def start_task(task_id: str, deps: Deps, caller: CanLabelingAnnotate) -> TaskView:
    return TaskView.model_validate(await service.start(deps, caller, task_id))


@router.post("/tasks/{task_id}/annotations", status_code=201)
async def submit_annotation(
    task_id: str, body: AnnotationCreate, deps: Deps, caller: CanLabelingAnnotate
) -> AnnotationView:
    _, annotation = await service.submit(deps, caller, task_id, body.label, body.lead_time_s)
    return AnnotationView.model_validate(annotation)


@router.post("/tasks/{task_id}/accept")
async def accept_task(
    task_id: str, deps: Deps, caller: CanLabelingReview, body: Review | None = None
) -> TaskView:
    reviewer = body.reviewer if body else None
    return TaskView.model_validate(await service.accept(deps, caller, task_id, reviewer))


@router.post("/tasks/{task_id}/reject")
async def reject_task(task_id: str, body: Rejection, deps: Deps, caller: CanLabelingReview) -> TaskView:
    return TaskView.model_validate(await service.reject(deps, caller, task_id, body.reviewer, body.reason))


@router.post("/tasks/{task_id}/rework")
async def rework_task(task_id: str, deps: Deps, caller: CanLabelingAnnotate) -> TaskView:
    return TaskView.model_validate(await service.rework(deps, caller, task_id))


@router.post("/tasks/{task_id}/skip")
async def skip_task(
    task_id: str, deps: Deps, caller: CanLabelingAnnotate, body: Reason | None = None
) -> TaskView:
    return TaskView.model_validate(await service.skip(deps, caller, task_id, body.reason if body else None))


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(
    task_id: str, deps: Deps, caller: CanLabelingManage, body: Reason | None = None
) -> TaskView:
    return TaskView.model_validate(await service.cancel(deps, caller, task_id, body.reason if body else None))


# --- exports ----------------------------------------------------------------------------------------


@router.post("/projects/{project_id}/export", status_code=202)
async def export_project(
    project_id: str, body: ExportCreate, deps: Deps, caller: CanLabelingManage, response: Response
) -> ExportView:
    found, created = await service.create_export(deps, caller, project_id, body)
    if not created:
        response.status_code = 200
    return _export_view(deps, found)


@router.get("/projects/{project_id}/exports/{export_id}")
async def get_export(project_id: str, export_id: str, deps: Deps, caller: CanLabelingRead) -> ExportView:
    return _export_view(deps, await service.export(deps, caller, project_id, export_id))
