"""The model registry through the SDK: model projects, their versions (by id or number), comparing two
versions, approving the release of a version whose evaluation failed, and the base-model hub.

    models = forge.models
    project = models.project("support-bot")              # by id or name
    models.compare(project["id"], "1", "2")["metrics"]   # {"bleu": {"a": 4.0, "b": 5.5, "delta": 1.5}}
    models.approve(project["id"], "2", "within noise; RISK-42")
"""

from __future__ import annotations

import builtins
import re
from typing import Any, TypedDict

from forge_sdk.client import ApiError, Service

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ModelProject(TypedDict):
    id: str
    name: str
    desc: str
    gate: dict[str, Any]
    created_at: str


class VersionSummary(TypedDict):
    id: str
    version: int
    state: str
    training_job_id: str | None
    evaluation_passed: bool | None
    tags: list[str]
    created_at: str


class ProjectStatus(TypedDict):
    versions_by_state: dict[str, int]
    latest_version: int | None
    latest_released_version: int | None
    latest_delivered_version: int | None


class ProjectDetail(ModelProject):
    """A project with its versions and how many are in each state (MR-5)."""

    versions: list[VersionSummary]
    status: ProjectStatus


class ModelVersion(TypedDict):
    id: str
    project_id: str
    version: int
    state: str
    artifact_uri: str
    training_job_id: str | None
    base_model_id: str | None
    dataset_versions: list[dict[str, Any]]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    tags: list[str]
    evaluation_passed: bool | None
    delivery_order_id: str | None
    bundle_uri: str | None
    created_at: str


class VersionRef(TypedDict):
    id: str
    version: int
    state: str
    base_model_id: str | None


class Comparison(TypedDict):
    """Two versions side by side: per metric `a`, `b` and `delta` (b - a); hyper-parameters with `same`."""

    a: VersionRef
    b: VersionRef
    metrics: dict[str, dict[str, float | None]]
    evaluation_metrics: dict[str, dict[str, float | None]]
    hyperparameters: dict[str, dict[str, Any]]
    datasets: dict[str, list[str]]


class HubModel(TypedDict):
    """A base model of the hub."""

    id: str
    name: str
    version: str
    uri: str
    architecture: str
    parameter_count: int
    licence: str
    created_at: str


class Models:
    """The registry, as the signed-in caller's tenant sees it."""

    def __init__(self, api: Service) -> None:
        self.api = api

    def projects(self) -> builtins.list[ModelProject]:
        found: builtins.list[ModelProject] = self.api.get("/model-projects")
        return found

    def create_project(self, name: str, **fields: Any) -> ModelProject:
        """A new model project (`desc`, `train_framework`, `inference_framework`, `gate` thresholds...)."""
        created: ModelProject = self.api.post("/model-projects", json={**fields, "name": name})
        return created

    def project_id(self, ref: str) -> str:
        """A project's id from its id or its name."""
        if UUID.match(ref):
            return ref
        for project in self.projects():
            if ref in (project["id"], project["name"]):
                return project["id"]
        raise ApiError(404, f"model project {ref!r} does not exist", "Not Found")

    def project(self, ref: str) -> ProjectDetail:
        """A project (by id or name) with its versions and their counts by state."""
        found: ProjectDetail = self.api.get(f"/model-projects/{self.project_id(ref)}")
        return found

    def versions(
        self, project: str, *, tag: str | None = None, state: str | None = None
    ) -> builtins.list[ModelVersion]:
        """A project's versions (the project by id or name), only those with `tag` or in `state` if given."""
        params = {key: value for key, value in (("tag", tag), ("state", state)) if value}
        found: builtins.list[ModelVersion] = self.api.get(
            f"/model-projects/{self.project_id(project)}/versions", params=params or None
        )
        return found

    def version_id(self, project_id: str, ref: str) -> str:
        """A version's id from its id or its number in the project."""
        if not ref.isdigit():
            return ref
        for version in self.api.get(f"/model-projects/{project_id}/versions"):
            if version["version"] == int(ref):
                return str(version["id"])
        raise ApiError(404, f"model project {project_id!r} has no version {ref}", "Not Found")

    def version(self, project: str, ref: str) -> ModelVersion:
        """One version, by id or number, of a project (by id or name)."""
        project_id = self.project_id(project)
        found: ModelVersion = self.api.get(
            f"/model-projects/{project_id}/versions/{self.version_id(project_id, ref)}"
        )
        return found

    def compare(self, project: str, a: str, b: str) -> Comparison:
        """Two versions (by id or number) side by side: metrics, evaluation metrics, hyper-parameters,
        datasets; `delta` is b - a."""
        found: Comparison = self.api.get(
            f"/model-projects/{self.project_id(project)}/versions/compare", params={"a": a, "b": b}
        )
        return found

    def approve(self, project: str, version: str, reason: str, *, alias: str | None = None) -> ModelVersion:
        """Release a version whose evaluation failed the gate (release approvers only; you are the approver,
        audited with `reason`). ApiError 403 without the role, 409 unless its evaluation failed."""
        project_id = self.project_id(project)
        body: dict[str, str] = {"reason": reason}
        if alias:
            body["alias"] = alias
        released: ModelVersion = self.api.post(
            f"/model-projects/{project_id}/versions/{self.version_id(project_id, version)}/override-release",
            json=body,
        )
        return released

    def base_models(self, name: str | None = None) -> builtins.list[HubModel]:
        """The tenant's hub of base models, optionally only those called `name`."""
        found: builtins.list[HubModel] = self.api.get("/base-models", params={"name": name} if name else None)
        return found


__all__ = [
    "Comparison",
    "HubModel",
    "ModelProject",
    "ModelVersion",
    "Models",
    "ProjectDetail",
    "VersionSummary",
]
