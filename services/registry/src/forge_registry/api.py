"""HTTP routes of the registry: parse, call the use case, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action
from forge_kit.runtime import Runtime

from forge_registry import schemas, service
from forge_registry.reports import ReportStore
from forge_registry.tables import ModelVersion


def _reports(request: Request) -> ReportStore:
    store: ReportStore = request.app.state.reports
    return store


CanRegistryApprove = Annotated[Principal, allow(Action.REGISTRY_APPROVE)]
CanRegistryEvaluate = Annotated[Principal, allow(Action.REGISTRY_EVALUATE)]
CanRegistryGate = Annotated[Principal, allow(Action.REGISTRY_GATE)]
CanRegistryMarkDelivered = Annotated[Principal, allow(Action.REGISTRY_MARK_DELIVERED)]
CanRegistryRead = Annotated[Principal, allow(Action.REGISTRY_READ)]
CanRegistryRelease = Annotated[Principal, allow(Action.REGISTRY_RELEASE)]
CanRegistryWrite = Annotated[Principal, allow(Action.REGISTRY_WRITE)]
Reports = Annotated[ReportStore, Depends(_reports)]
VERSION = "/model-projects/{project_id}/versions/{version_id}"

router = APIRouter()


def _view(version: ModelVersion) -> schemas.VersionView:
    return schemas.VersionView.model_validate(version, from_attributes=True)


# Model projects


@router.post("/model-projects", status_code=status.HTTP_201_CREATED, tags=["model projects"])
async def create_project(
    body: schemas.ProjectCreate, who: CanRegistryWrite, svc: Runtime
) -> schemas.ProjectView:
    created = await service.create_project(svc.db, who, body)
    return schemas.ProjectView.model_validate(created, from_attributes=True)


@router.get("/model-projects", tags=["model projects"])
async def list_projects(who: CanRegistryRead, svc: Runtime) -> list[schemas.ProjectView]:
    return [
        schemas.ProjectView.model_validate(p, from_attributes=True)
        for p in await service.projects(svc.db, who)
    ]


@router.get("/model-projects/{project_id}", tags=["model projects"])
async def get_project(project_id: str, who: CanRegistryRead, svc: Runtime) -> schemas.ProjectDetail:
    found, versions = await service.project(svc.db, who, project_id)
    by_state: dict[str, int] = {}
    for item in versions:
        by_state[item.state] = by_state.get(item.state, 0) + 1

    def latest(*states: str) -> int | None:
        numbers = [v.version for v in versions if v.state in states]
        return max(numbers) if numbers else None

    return schemas.ProjectDetail.model_validate(
        {
            **schemas.ProjectView.model_validate(found, from_attributes=True).model_dump(),
            "versions": [schemas.VersionSummary.model_validate(v, from_attributes=True) for v in versions],
            "status": schemas.ProjectStatus(
                versions_by_state=by_state,
                latest_version=max((v.version for v in versions), default=None),
                latest_released_version=latest("released", "delivered"),
                latest_delivered_version=latest("delivered"),
            ),
        }
    )


@router.put("/model-projects/{project_id}/gate", tags=["model projects"])
async def set_gate(
    project_id: str, body: schemas.GateUpdate, who: CanRegistryGate, svc: Runtime
) -> schemas.ProjectView:
    updated = await service.set_gate(svc.db, who, project_id, body.gate)
    return schemas.ProjectView.model_validate(updated, from_attributes=True)


# Base models


@router.post("/base-models", status_code=status.HTTP_201_CREATED, tags=["base models"])
async def register_base_model(
    body: schemas.BaseModelCreate, who: CanRegistryWrite, svc: Runtime
) -> schemas.BaseModelView:
    created = await service.register_base_model(svc.db, who, body, svc.settings.model_areas)
    return schemas.BaseModelView.model_validate(created, from_attributes=True)


@router.get("/base-models", tags=["base models"])
async def list_base_models(
    who: CanRegistryRead, svc: Runtime, name: str | None = None
) -> list[schemas.BaseModelView]:
    found = await service.base_models(svc.db, who, name)
    return [schemas.BaseModelView.model_validate(m, from_attributes=True) for m in found]


@router.get("/base-models/{model_id}", tags=["base models"])
async def get_base_model(model_id: str, who: CanRegistryRead, svc: Runtime) -> schemas.BaseModelView:
    found = await service.base_model(svc.db, who, model_id)
    return schemas.BaseModelView.model_validate(found, from_attributes=True)


# Model versions


@router.post(
    "/model-projects/{project_id}/versions",
    status_code=status.HTTP_201_CREATED,
    tags=["model versions"],
    responses={200: {"description": "this training job's version was registered already"}},
)
async def register_version(
    project_id: str, body: schemas.VersionCreate, who: CanRegistryWrite, svc: Runtime, response: Response
) -> schemas.VersionView:
    registered, created = await service.register_version(
        svc.db, who, project_id, body, svc.settings.model_areas
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _view(registered)


@router.get("/model-projects/{project_id}/versions", tags=["model versions"])
async def list_versions(
    project_id: str, who: CanRegistryRead, svc: Runtime, tag: str | None = None, state: str | None = None
) -> list[schemas.VersionView]:
    await service.project(svc.db, who, project_id)  # 404 for an unknown project
    found = await service.search_versions(svc.db, who, project_id=project_id, tag=tag, state=state)
    return [_view(v) for v in found]


@router.get("/model-projects/{project_id}/versions/compare", tags=["model versions"])
async def compare_versions(
    project_id: str,
    who: CanRegistryRead,
    svc: Runtime,
    a: Annotated[str, Query(min_length=1, description="version id or number")],
    b: Annotated[str, Query(min_length=1, description="version id or number")],
) -> schemas.Comparison:
    return await service.compare(svc.db, who, project_id, a, b)


@router.get(VERSION, tags=["model versions"])
async def get_version(
    project_id: str, version_id: str, who: CanRegistryRead, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.version(svc.db, who, version_id, project_id))


@router.get("/model-versions", tags=["model versions"])
async def search_versions(
    who: CanRegistryRead,
    svc: Runtime,
    tag: str | None = None,
    state: str | None = None,
    project_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[schemas.VersionView]:
    found = await service.search_versions(
        svc.db, who, project_id=project_id, tag=tag, state=state, limit=limit
    )
    return [_view(v) for v in found]


@router.put(f"{VERSION}/tags", tags=["model versions"])
async def set_tags(
    project_id: str, version_id: str, body: schemas.TagsUpdate, who: CanRegistryWrite, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.set_tags(svc.db, who, project_id, version_id, list(body.tags)))


@router.get(f"{VERSION}/audit", tags=["model versions"])
async def version_audit(
    project_id: str, version_id: str, who: CanRegistryRead, svc: Runtime
) -> list[schemas.AuditView]:
    found = await service.audit(svc.db, who, project_id, version_id)
    return [schemas.AuditView.model_validate(entry, from_attributes=True) for entry in found]


@router.get(f"{VERSION}/evaluations", tags=["release gate"])
async def version_evaluations(
    project_id: str, version_id: str, who: CanRegistryRead, svc: Runtime
) -> list[schemas.EvaluationView]:
    found = await service.evaluations(svc.db, who, project_id, version_id)
    return [schemas.EvaluationView.model_validate(e, from_attributes=True) for e in found]


# Transitions of the release gate


@router.post(f"{VERSION}/evaluation/start", tags=["release gate"])
async def start_evaluation(
    project_id: str, version_id: str, body: schemas.StartEvaluation, who: CanRegistryEvaluate, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.start_evaluation(svc.db, who, project_id, version_id, body.evaluation_id))


@router.post(f"{VERSION}/evaluation/abort", tags=["release gate"])
async def abort_evaluation(
    project_id: str, version_id: str, body: schemas.AbortEvaluation, who: CanRegistryEvaluate, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.abort_evaluation(svc.db, who, project_id, version_id, body.reason))


@router.post(f"{VERSION}/evaluation/result", tags=["release gate"])
async def record_evaluation(
    project_id: str,
    version_id: str,
    body: schemas.EvaluationResult,
    who: CanRegistryEvaluate,
    svc: Runtime,
    reports: Reports,
) -> schemas.EvaluationView:
    recorded = await service.record_evaluation(svc.db, reports, who, project_id, version_id, body)
    return schemas.EvaluationView.model_validate(recorded.evaluation, from_attributes=True)


@router.post(f"{VERSION}/release", tags=["release gate"])
async def release(
    project_id: str,
    version_id: str,
    who: CanRegistryRelease,
    svc: Runtime,
    body: schemas.Release | None = None,
) -> schemas.VersionView:
    return _view(await service.release(svc.db, who, project_id, version_id, body or schemas.Release()))


@router.post(f"{VERSION}/override-release", tags=["release gate"])
async def override_release(
    project_id: str, version_id: str, body: schemas.OverrideRelease, who: CanRegistryApprove, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.override_release(svc.db, who, project_id, version_id, body))


@router.post(f"{VERSION}/mark-delivered", tags=["release gate"])
async def mark_delivered(
    project_id: str, version_id: str, body: schemas.Delivered, who: CanRegistryMarkDelivered, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.mark_delivered(svc.db, who, project_id, version_id, body))


@router.post(f"{VERSION}/deprecate", tags=["release gate"])
async def deprecate(
    project_id: str,
    version_id: str,
    who: CanRegistryWrite,
    svc: Runtime,
    body: schemas.Deprecate | None = None,
) -> schemas.VersionView:
    return _view(await service.deprecate(svc.db, who, project_id, version_id, body or schemas.Deprecate()))


@router.post(f"{VERSION}/reinstate", tags=["release gate"])
async def reinstate(
    project_id: str, version_id: str, body: schemas.Reinstate, who: CanRegistryWrite, svc: Runtime
) -> schemas.VersionView:
    return _view(await service.reinstate(svc.db, who, project_id, version_id, body))


@router.post(f"{VERSION}/archive", tags=["release gate"])
async def archive(
    project_id: str, version_id: str, who: CanRegistryWrite, svc: Runtime, body: schemas.Archive | None = None
) -> schemas.VersionView:
    return _view(await service.archive(svc.db, who, project_id, version_id, body or schemas.Archive()))
