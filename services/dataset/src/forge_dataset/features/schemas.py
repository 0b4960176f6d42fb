"""The body of `POST .../versions/{vid}/features` and the view of a fitted transformer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from forge_contracts.events.base import Id
from forge_contracts.features import TransformerSpec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from forge_dataset.processing.schemas import ProcessResources


class FeaturesRequest(BaseModel):
    """Fit a transformer on the version (`fit`) or apply a fitted one (`transformer_id`); either way the
    version's records, each with its feature vector, become a new version. Runs as a workload under
    `project_id`'s quota in the scheduler."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fit: TransformerSpec | None = None
    transformer_id: Id | None = Field(
        default=None, description="A transformer fitted before, of your tenant."
    )
    project_id: Id = Field(description="The scheduler project whose quota the run uses.")
    resources: ProcessResources = Field(default_factory=ProcessResources)
    priority: int = Field(default=0, ge=0, le=1000)

    @model_validator(mode="after")
    def _one(self) -> FeaturesRequest:
        if (self.fit is None) == (self.transformer_id is None):
            raise ValueError(
                "give exactly one of fit (a transformer to fit) or transformer_id (one to apply)"
            )
        return self


class TransformerView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str = Field(description="The dataset it was fitted on.")
    fitted_on_version_id: str
    task_id: str
    spec: dict[str, Any]
    sha256: str = Field(description="Of the joblib artifact, checked before every use.")
    size_bytes: int
    dimensions: int = Field(description="Length of the feature vector it writes.")
    summary: dict[str, Any] = Field(
        description="Each step's figures (vocabulary, categories, kept, variance)."
    )
    created_by: str | None
    created_at: datetime
