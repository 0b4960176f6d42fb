"""Models of the registry named by a dataset pipeline or transformer (a translation model for
back-translation, an image encoder for embeddings): by the hub's base model id or a model version id,
resolved by the registry in the caller's tenant when the task runs, and read by the data runtime through
pre-signed links to the model's files."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forge_contracts.events.base import Id


class RegisteredModel(BaseModel):
    """A model of the registry: a base model of the hub, or a model version (give exactly one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_model_id: Id | None = None
    model_version_id: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> RegisteredModel:
        if (self.base_model_id is None) == (self.model_version_id is None):
            raise ValueError("give exactly one of base_model_id or model_version_id")
        return self

    @property
    def key(self) -> str:
        """How the task and the runtime name it: `base_model:<id>` or `model_version:<id>`."""
        return (
            f"base_model:{self.base_model_id}"
            if self.base_model_id
            else f"model_version:{self.model_version_id}"
        )

    def __str__(self) -> str:
        return (
            f"base model {self.base_model_id}"
            if self.base_model_id
            else f"model version {self.model_version_id}"
        )


class ModelFiles(BaseModel):
    """A model's files as the runtime reads them: relative path -> pre-signed URL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: dict[str, str] = Field(min_length=1)


__all__ = ["ModelFiles", "RegisteredModel"]
