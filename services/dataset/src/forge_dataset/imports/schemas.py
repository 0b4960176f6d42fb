"""Requests of imports."""

from __future__ import annotations

from typing import Literal

from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_contracts.events.base import Sha256
from forge_kit.types import NonNegativeInt64
from pydantic import BaseModel, ConfigDict, Field, model_validator


class LinkFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=4000, pattern=r"^[^\x00-\x20]+$", description="An http(s) URL.")
    name: str = Field(pattern=FILE_NAME_PATTERN, description="Its file name in the version.")
    sha256: Sha256 | None = Field(default=None, description="Checked after download when given.")
    size_bytes: NonNegativeInt64 | None = Field(default=None, description="Checked when given.")


class LinkSource(BaseModel):
    """Files fetched over HTTP(S) from public addresses (see docs/security.md on egress)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["link"]
    files: list[LinkFile] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _names(self) -> LinkSource:
        if len({f.name for f in self.files}) != len(self.files):
            raise ValueError("two files have the same name")
        return self


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: LinkSource = Field(description="Where the records come from.")
