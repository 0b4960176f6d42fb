"""Request and response models of the alias routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from forge_contracts.events.base import Id
from forge_contracts.events.dataset import ALIAS_PATTERN
from forge_kit.types import NonBlankText
from pydantic import BaseModel, ConfigDict, Field

AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, description="`latest`, or a name of yours.")]


class AliasMove(BaseModel):
    """`PUT /datasets/{id}/aliases/{name}`: the published version the alias names from now on."""

    model_config = ConfigDict(extra="forbid")

    version_id: Id = Field(description="A published version of this dataset.")
    reason: NonBlankText | None = Field(default=None, max_length=4000, description="Why (audited).")


class AliasRemoval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: NonBlankText | None = Field(default=None, max_length=4000, description="Why (audited).")


class AliasView(BaseModel):
    name: str
    dataset_id: str
    version_id: str
    version_number: int
    version_state: str
    moved_by: str | None
    moved_at: datetime
